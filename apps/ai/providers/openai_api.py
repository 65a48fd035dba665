"""OpenAI (and OpenAI-compatible endpoints) through the official `openai` SDK."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import openai

from apps.ai.providers.base import (
    Completion,
    CompletionRequest,
    Embeddings,
    EmbedKind,
    ProviderConfig,
    ProviderError,
    StreamUsage,
    as_vectors,
)

NAME = "openai"


def _error(exc: Exception) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        return ProviderError(NAME, f"HTTP {status}", transient=status == 429 or status >= 500, status=status)
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return ProviderError(NAME, type(exc).__name__, transient=True)
    # Malformed bodies surface as JSON or validation errors from inside the SDK.
    return ProviderError(NAME, f"{type(exc).__name__}: {exc}", transient=False)


class OpenAIProvider:
    name = NAME
    can_generate = True
    can_embed = True

    def __init__(self, config: ProviderConfig) -> None:
        self._client = openai.OpenAI(
            api_key=config.api_key,
            base_url=config.base_url or None,
            timeout=config.timeout,
            max_retries=0,  # the router owns retries and fallback
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        params: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_completion_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.json_schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": dict(request.json_schema), "strict": True},
            }
        return params

    def complete(self, request: CompletionRequest) -> Completion:
        try:
            response = self._client.chat.completions.create(**self._params(request))
            choice = response.choices[0]
            text = choice.message.content
            if text is None:
                raise ProviderError(NAME, "an answer without content", transient=False)
            usage = response.usage
            return Completion(
                text=text,
                tokens_in=usage.prompt_tokens if usage else 0,
                tokens_out=usage.completion_tokens if usage else 0,
                truncated=choice.finish_reason == "length",
            )
        except Exception as exc:  # the SDK edge: every failure becomes a ProviderError
            raise _error(exc) from exc

    def stream(self, request: CompletionRequest, usage: StreamUsage) -> Iterator[str]:
        try:
            chunks = self._client.chat.completions.create(
                **self._params(request), stream=True, stream_options={"include_usage": True}
            )
            for chunk in chunks:
                if chunk.usage is not None:
                    usage.tokens_in = chunk.usage.prompt_tokens
                    usage.tokens_out = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.finish_reason == "length":
                        usage.truncated = True
                    if choice.delta.content:
                        yield choice.delta.content
        except Exception as exc:
            raise _error(exc) from exc

    def embed(self, texts: Sequence[str], *, model: str, kind: EmbedKind, dimensions: int) -> Embeddings:
        try:
            response = self._client.embeddings.create(
                model=model, input=list(texts), dimensions=dimensions, encoding_format="float"
            )
            rows = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
            if len(rows) != len(texts):
                raise ProviderError(NAME, f"{len(rows)} embeddings for {len(texts)} texts", transient=False)
            return Embeddings(vectors=as_vectors(rows, dimensions, NAME), tokens_in=response.usage.prompt_tokens)
        except Exception as exc:
            raise _error(exc) from exc
