"""Google Gemini through the official `google-genai` SDK (Gemini API, API-key auth)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

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

NAME = "google"
_TASK_TYPES: dict[EmbedKind, str] = {"query": "RETRIEVAL_QUERY", "passage": "RETRIEVAL_DOCUMENT"}


def _error(exc: Exception) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        status = int(exc.code or 0)
        return ProviderError(NAME, f"HTTP {status}", transient=status == 429 or status >= 500, status=status)
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError) or type(exc).__name__ in {
        "TimeoutException",
        "ReadTimeout",
        "ConnectTimeout",
        "ConnectError",
        "RemoteProtocolError",
    }:
        # The SDK may use httpx or its successor; both name their transport errors alike.
        return ProviderError(NAME, type(exc).__name__, transient=True)
    return ProviderError(NAME, f"{type(exc).__name__}: {exc}", transient=False)


def _thinks_unless_told(model: str) -> bool:
    """Gemini 2.5 Flash (not Flash-Lite, which does not think by default; Pro cannot stop)."""
    return model.startswith("gemini-2.5-flash") and "lite" not in model


def _tokens_out(meta: types.GenerateContentResponseUsageMetadata | None) -> int:
    """Output tokens as billed: the answer's and the thoughts' (billed at the output price)."""
    if meta is None:
        return 0
    return (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)


def _cut(response: types.GenerateContentResponse) -> bool:
    """Whether Gemini stopped at max_output_tokens (a stream says so in its last chunk)."""
    return any(candidate.finish_reason == types.FinishReason.MAX_TOKENS for candidate in response.candidates or ())


class GoogleProvider:
    name = NAME
    can_generate = True
    can_embed = True

    def __init__(self, config: ProviderConfig) -> None:
        options = types.HttpOptions(
            base_url=config.base_url or None,
            timeout=int(config.timeout * 1000),  # milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),  # the router owns retries and fallback
        )
        self._client = genai.Client(api_key=config.api_key, http_options=options)

    @staticmethod
    def _contents(request: CompletionRequest) -> list[types.Content]:
        return [
            types.Content(role="model" if m.role == "assistant" else "user", parts=[types.Part(text=m.content)])
            for m in request.messages
        ]

    @staticmethod
    def _config(request: CompletionRequest) -> types.GenerateContentConfig:
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            max_output_tokens=request.max_tokens,
            temperature=request.temperature,
        )
        if request.json_schema is not None:
            config.response_mime_type = "application/json"
            config.response_json_schema = dict(request.json_schema)
        if _thinks_unless_told(request.model):
            # 2.5 Flash thinks by default, and its thoughts count against max_output_tokens: a
            # 30-token ticket title came back empty. Helpdesk answers need no thinking.
            config.thinking_config = types.ThinkingConfig(thinking_budget=0)
        return config

    def complete(self, request: CompletionRequest) -> Completion:
        try:
            response = self._client.models.generate_content(
                model=request.model, contents=self._contents(request), config=self._config(request)
            )
            text = response.text
            if text is None:
                raise ProviderError(NAME, "an answer without text", transient=False)
            meta = response.usage_metadata
            return Completion(
                text=text,
                tokens_in=(meta.prompt_token_count or 0) if meta else 0,
                tokens_out=_tokens_out(meta),
                truncated=_cut(response),
            )
        except Exception as exc:  # the SDK edge: every failure becomes a ProviderError
            raise _error(exc) from exc

    def stream(self, request: CompletionRequest, usage: StreamUsage) -> Iterator[str]:
        try:
            chunks = self._client.models.generate_content_stream(
                model=request.model, contents=self._contents(request), config=self._config(request)
            )
            for chunk in chunks:
                meta = chunk.usage_metadata
                if meta is not None:
                    usage.tokens_in = meta.prompt_token_count or usage.tokens_in
                    usage.tokens_out = _tokens_out(meta) or usage.tokens_out
                usage.truncated = usage.truncated or _cut(chunk)
                text = chunk.text
                if text:
                    yield text
        except Exception as exc:
            raise _error(exc) from exc

    def embed(self, texts: Sequence[str], *, model: str, kind: EmbedKind, dimensions: int) -> Embeddings:
        # Typed as the SDK's part union: with Pillow installed its list type includes images,
        # and a plain list[str] no longer matches the invariant list parameter.
        contents: list[types.PartUnion] = list(texts)
        try:
            response = self._client.models.embed_content(
                model=model,
                contents=contents,
                config=types.EmbedContentConfig(task_type=_TASK_TYPES[kind], output_dimensionality=dimensions),
            )
            rows = [list(item.values or ()) for item in response.embeddings or ()]
            if len(rows) != len(texts):
                raise ProviderError(NAME, f"{len(rows)} embeddings for {len(texts)} texts", transient=False)
            # The Gemini API does not report embedding tokens; estimate them like the router does.
            tokens = sum(max(1, len(text) // 4) for text in texts)
            return Embeddings(vectors=as_vectors(rows, dimensions, NAME), tokens_in=tokens)
        except Exception as exc:
            raise _error(exc) from exc
