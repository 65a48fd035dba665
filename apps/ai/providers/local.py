"""The offline provider: e5 embeddings, the intent classifier, extractive summaries; no generation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from apps.ai import intents
from apps.ai.embeddings import MODEL_NAME, embed_passages, embed_queries
from apps.ai.providers.base import (
    Completion,
    CompletionRequest,
    Embeddings,
    EmbedKind,
    ProviderError,
    StreamUsage,
)
from apps.ai.summaries import summarize_extractive

NAME = "local"
EMBED_MODEL = MODEL_NAME
CLASSIFY_MODEL = f"{MODEL_NAME}+softmax"
SUMMARIZE_MODEL = "extractive"


class LocalProvider:
    name = NAME
    can_generate = False  # no usable local LLM on these machines (DESIGN.md)
    can_embed = True

    def complete(self, request: CompletionRequest) -> Completion:
        raise ProviderError(NAME, "offline models cannot generate text", transient=False)

    def stream(self, request: CompletionRequest, usage: StreamUsage) -> Iterator[str]:
        raise ProviderError(NAME, "offline models cannot generate text", transient=False)

    def embed(self, texts: Sequence[str], *, model: str, kind: EmbedKind, dimensions: int) -> Embeddings:
        vectors = embed_queries(texts) if kind == "query" else embed_passages(texts)
        return Embeddings(vectors=vectors, tokens_in=0)

    def classify(
        self, text: str, *, extra_examples: Mapping[str, Sequence[str]] | None, language: str | None = None
    ) -> intents.IntentResult:
        return intents.classify_intent(text, extra_examples=extra_examples, language=language)

    def summarize(self, messages: Sequence[str], *, max_sentences: int) -> str:
        return summarize_extractive(messages, max_sentences=max_sentences)


local_provider = LocalProvider()
