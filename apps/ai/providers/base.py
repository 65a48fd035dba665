"""The one interface every AI provider implements, and the typed values that cross it.

Providers are thin typed clients over one vendor SDK each. They do not retry, fall back or
meter: the router owns that. Every SDK failure leaves a provider as `ProviderError`, marked
transient (worth one retry: timeouts, connection errors, 429 and 5xx) or not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

Role = Literal["user", "assistant"]
EmbedKind = Literal["query", "passage"]
Vectors = npt.NDArray[np.float32]


class ProviderError(Exception):
    """A provider call failed; `transient` failures are worth one retry on the same provider."""

    def __init__(self, provider: str, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.transient = transient
        self.status = status


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class ProviderConfig:
    api_key: str
    base_url: str = ""
    timeout: float = 20.0


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    messages: Sequence[ChatMessage]
    system: str = ""
    max_tokens: int = 512
    temperature: float = 0.3
    # A JSON schema the answer must follow; providers use their native structured output.
    json_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    # The vendor stopped at max_tokens: `text` is the start of an answer, not an answer.
    truncated: bool = False


@dataclass
class StreamUsage:
    """Filled in by a provider's stream as the vendor reports usage (often only at the end)."""

    tokens_in: int = 0
    tokens_out: int = 0
    truncated: bool = False  # the vendor stopped at max_tokens


@dataclass(frozen=True)
class Embeddings:
    vectors: Vectors
    tokens_in: int


class Provider(Protocol):
    name: str
    can_generate: bool
    can_embed: bool

    def complete(self, request: CompletionRequest) -> Completion: ...

    def stream(self, request: CompletionRequest, usage: StreamUsage) -> Iterator[str]:
        """Yield text deltas; fill `usage` as the vendor reports it. Raise ProviderError on failure."""
        ...

    def embed(self, texts: Sequence[str], *, model: str, kind: EmbedKind, dimensions: int) -> Embeddings: ...


def as_vectors(rows: Sequence[Sequence[float]], dimensions: int, provider: str) -> Vectors:
    """Check and L2-normalise vendor vectors, so every provider's rows compare by dot product."""
    vectors = np.asarray(rows, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dimensions:
        raise ProviderError(
            provider, f"embeddings of shape {vectors.shape}, expected (n, {dimensions})", transient=False
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (vectors / norms).astype(np.float32)
    return out
