"""Anthropic Claude through the official `anthropic` SDK (no embeddings API)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import anthropic

from apps.ai.providers.base import (
    Completion,
    CompletionRequest,
    Embeddings,
    EmbedKind,
    ProviderConfig,
    ProviderError,
    StreamUsage,
)

NAME = "anthropic"


def _error(exc: Exception) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        # 529 is Anthropic's "overloaded".
        return ProviderError(NAME, f"HTTP {status}", transient=status == 429 or status >= 500, status=status)
    if isinstance(exc, anthropic.APITimeoutError | anthropic.APIConnectionError):
        return ProviderError(NAME, type(exc).__name__, transient=True)
    return ProviderError(NAME, f"{type(exc).__name__}: {exc}", transient=False)


class AnthropicProvider:
    name = NAME
    can_generate = True
    can_embed = False

    def __init__(self, config: ProviderConfig) -> None:
        self._client = anthropic.Anthropic(
            api_key=config.api_key,
            base_url=config.base_url or None,
            timeout=config.timeout,
            max_retries=0,  # the router owns retries and fallback
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        # Current Claude models take no sampling temperature: `request.temperature` is not sent.
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if request.system.strip():
            params["system"] = request.system.strip()
        if request.json_schema is not None:
            params["output_config"] = {"format": {"type": "json_schema", "schema": dict(request.json_schema)}}
        return params

    def complete(self, request: CompletionRequest) -> Completion:
        try:
            response = self._client.messages.create(**self._params(request))
            text = "".join(block.text for block in response.content if block.type == "text")
            return Completion(
                text=text,
                tokens_in=response.usage.input_tokens,
                tokens_out=response.usage.output_tokens,
                truncated=response.stop_reason == "max_tokens",
            )
        except Exception as exc:  # the SDK edge: every failure becomes a ProviderError
            raise _error(exc) from exc

    def stream(self, request: CompletionRequest, usage: StreamUsage) -> Iterator[str]:
        try:
            events = self._client.messages.create(**self._params(request), stream=True)
            for event in events:
                if event.type == "message_start":
                    usage.tokens_in = event.message.usage.input_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield event.delta.text
                elif event.type == "message_delta":
                    usage.tokens_out = event.usage.output_tokens
                    usage.truncated = event.delta.stop_reason == "max_tokens"
                elif event.type == "error":  # type: ignore[comparison-overlap, unused-ignore]
                    raise ProviderError(NAME, "error event in stream", transient=True)
        except Exception as exc:
            raise _error(exc) from exc

    def embed(self, texts: Sequence[str], *, model: str, kind: EmbedKind, dimensions: int) -> Embeddings:
        raise ProviderError(NAME, "Anthropic has no embeddings API", transient=False)
