"""Intent of a message: softmax regressions over sentence embeddings, fitted on example phrases.

The classifier for an example set is fitted in-process (tens of milliseconds for a few
hundred phrases) and cached under the set's sha256, so a tenant that adds an intent or a
phrase gets a new classifier on its next message without a training step. Messages unlike
every example (low probability or low similarity to the nearest example) are `unknown`.

Every message is scored by a head over multilingual e5 embeddings. English messages are
also scored by a second head over English MiniLM embeddings (minilm.py), fitted on the
same phrases, and the two heads' probabilities are averaged: on Banking77's development
rows this lifted 10-shot accuracy from 82.0 % to 85.9 % (docs/architecture.md). A vote of
the nearest example phrases (by the same embeddings) is mixed in with a small weight.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from apps.ai import minilm
from apps.ai.embeddings import embed_queries
from apps.ai.intent_examples import DEFAULT_EXAMPLES, OUT_OF_SCOPE_EXAMPLES
from apps.ai.linear import softmax, softmax_fit
from apps.core.lru import LruCache

UNKNOWN = "unknown"
DEFAULT_INTENTS: tuple[str, ...] = tuple(DEFAULT_EXAMPLES)
# Out-of-scope rejection: both must hold for a known intent. Chosen on hand-written nonsense
# and off-topic phrases against the default examples (see tests), not on evaluation data.
MIN_PROBABILITY = 0.3
MIN_SIMILARITY = 0.84
# L2 penalty on the mean loss (scikit-learn's C = 1 / (L2 * rows)). At 10 phrases per intent it
# was the best of 1e-4 .. 1e-6 on an inner hash split of the Banking77 train rows; with
# thousands of rows less is better, and `ai_eval` chooses it the same way (evaluation.py).
L2 = 1e-5
MAX_ITER = 500
CLASSIFIER_CACHE_SIZE = 64
# The nearest-example vote: the KNN_NEIGHBOURS example phrases most similar to the message
# (cosine; e5's, averaged with MiniLM's for English) vote for their intents with weights
# exp(similarity / KNN_TEMPERATURE); the vote is KNN_WEIGHT of the final probabilities.
# Chosen among k 5/10/20, temperature 0.02/0.05/0.1 and weight 0.1..0.5 by the mean accuracy
# on inner hash splits of Banking77's train rows at 10 shots and at all rows (the reported
# hold-out took no part); docs/architecture.md has the figures.
KNN_NEIGHBOURS = 5
KNN_TEMPERATURE = 0.02
KNN_WEIGHT = 0.1
KNN_CHUNK = 1024  # rows per similarity matrix, to bound memory when thousands are scored at once

# Languages whose messages are also scored by the English head.
ENGLISH_HEAD_LANGUAGES = frozenset({"en"})

Floats = npt.NDArray[np.float32]
Embedder = Callable[[Sequence[str]], Floats]


def english_embedder() -> Embedder | None:
    """The English encoder's `embed`, or None when its model is not installed."""
    return minilm.embed_english if minilm.available() else None


@dataclass(frozen=True)
class IntentResult:
    intent: str
    confidence: float
    scores: dict[str, float]
    similarity: float = 0.0


@dataclass(frozen=True)
class LinearHead:
    """Softmax regression weights over one encoder's embeddings."""

    weights: Floats
    bias: Floats

    @classmethod
    def fit(
        cls, vectors: Floats, labels: npt.NDArray[np.int64], n_classes: int, *, l2: float = L2, max_iter: int = MAX_ITER
    ) -> LinearHead:
        weights, bias = softmax_fit(vectors, labels, n_classes, l2=l2, max_iter=max_iter)
        return cls(weights, bias)

    def probabilities(self, vectors: Floats) -> Floats:
        return softmax(vectors @ self.weights + self.bias)


@dataclass(frozen=True)
class IntentClassifier:
    intents: tuple[str, ...]
    head: LinearHead  # over e5 query embeddings
    examples: Floats  # L2-normalised e5 example embeddings
    example_intents: npt.NDArray[np.int64]
    english: LinearHead | None = None  # over MiniLM embeddings of the same examples
    english_examples: Floats | None = None  # L2-normalised MiniLM example embeddings

    @classmethod
    def fit(
        cls,
        examples: Mapping[str, Sequence[str]],
        *,
        embed: Embedder = embed_queries,
        embed_english: Embedder | None = None,
        l2: float = L2,
        max_iter: int = MAX_ITER,
        out_of_scope: Sequence[str] = (),
    ) -> IntentClassifier:
        """Fit on {intent: phrases}; `out_of_scope` phrases become an extra `unknown` class.

        With `embed_english`, an English head is fitted on the same phrases too.
        """
        if out_of_scope:
            examples = {**examples, UNKNOWN: (*examples.get(UNKNOWN, ()), *out_of_scope)}
        intents = tuple(name for name, phrases in examples.items() if phrases)
        texts = [phrase for name in intents for phrase in examples[name]]
        labels = np.array([i for i, name in enumerate(intents) for _ in examples[name]], dtype=np.int64)
        english = embed_english(texts) if embed_english is not None else None
        return cls.fit_vectors(intents, embed(texts), labels, english_vectors=english, l2=l2, max_iter=max_iter)

    @classmethod
    def fit_vectors(
        cls,
        intents: Sequence[str],
        vectors: Floats,
        labels: npt.NDArray[np.int64],
        *,
        english_vectors: Floats | None = None,
        l2: float = L2,
        english_l2: float | None = None,
        max_iter: int = MAX_ITER,
    ) -> IntentClassifier:
        """Fit on example embeddings (`labels` index `intents`); `english_vectors` are the same rows' MiniLM ones."""
        head = LinearHead.fit(vectors, labels, len(intents), l2=l2, max_iter=max_iter)
        english = None
        if english_vectors is not None:
            english_l2 = l2 if english_l2 is None else english_l2
            english = LinearHead.fit(english_vectors, labels, len(intents), l2=english_l2, max_iter=max_iter)
        return cls(tuple(intents), head, vectors, labels, english, english_vectors)

    def probabilities(self, vectors: Floats, english_vectors: Floats | None = None) -> Floats:
        """Class probabilities of L2-normalised query embeddings: the heads', mixed with the nearest examples' vote.

        `english_vectors` (MiniLM) bring in the English head and English similarities.
        """
        english = english_vectors if self.english is not None and self.english_examples is not None else None
        vote = self.neighbour_vote(vectors, english)
        mixed: Floats = ((1 - KNN_WEIGHT) * self.heads_probabilities(vectors, english) + KNN_WEIGHT * vote).astype(
            np.float32
        )
        return mixed

    def heads_probabilities(self, vectors: Floats, english_vectors: Floats | None = None) -> Floats:
        """The e5 head's probabilities, averaged with the English head's when `english_vectors` are given."""
        proba = self.head.probabilities(vectors)
        if english_vectors is None or self.english is None:
            return proba
        mixed: Floats = ((proba + self.english.probabilities(english_vectors)) / 2).astype(np.float32)
        return mixed

    def neighbour_vote(self, vectors: Floats, english_vectors: Floats | None = None) -> Floats:
        """Each row's vote of its KNN_NEIGHBOURS most similar examples, as probabilities over the intents."""
        k = min(KNN_NEIGHBOURS, len(self.example_intents))
        votes = np.zeros((len(vectors), len(self.intents)), dtype=np.float32)
        for start in range(0, len(vectors), KNN_CHUNK):
            rows = slice(start, start + KNN_CHUNK)
            sims = vectors[rows] @ self.examples.T
            if english_vectors is not None and self.english_examples is not None:
                sims = (sims + english_vectors[rows] @ self.english_examples.T) / 2
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            top_sims = np.take_along_axis(sims, top, axis=1)
            weights = np.exp((top_sims - top_sims.max(axis=1, keepdims=True)) / np.float32(KNN_TEMPERATURE))
            block = votes[rows]
            np.add.at(block, (np.arange(len(block))[:, None], self.example_intents[top]), weights)
            block /= block.sum(axis=1, keepdims=True)
        return votes

    def similarities(self, vectors: Floats, proba: Floats) -> Floats:
        """Cosine similarity of each e5 vector to its nearest example of the predicted intent."""
        best = proba.argmax(axis=1)
        sims = vectors @ self.examples.T
        sims[self.example_intents[None, :] != best[:, None]] = -1.0
        nearest: Floats = sims.max(axis=1).astype(np.float32)
        return nearest

    def classify_vector(
        self,
        vector: Floats,
        *,
        english_vector: Floats | None = None,
        min_probability: float = MIN_PROBABILITY,
        min_similarity: float = MIN_SIMILARITY,
    ) -> IntentResult:
        english = english_vector[None, :] if english_vector is not None else None
        proba_rows = self.probabilities(vector[None, :], english)
        proba = proba_rows[0]
        best = int(proba.argmax())
        similarity = float(self.similarities(vector[None, :], proba_rows)[0])
        scores = {name: round(float(p), 4) for name, p in zip(self.intents, proba, strict=True)}
        confidence = float(proba[best])
        if self.intents[best] == UNKNOWN or confidence < min_probability or similarity < min_similarity:
            return IntentResult(UNKNOWN, confidence, scores, similarity)
        return IntentResult(self.intents[best], confidence, scores, similarity)


_lock = threading.Lock()
_classifiers: LruCache[str, IntentClassifier] = LruCache(CLASSIFIER_CACHE_SIZE)
_pool: ThreadPoolExecutor | None = None


def _english_pool() -> ThreadPoolExecutor:
    """One thread per process for the English encoder, started on first use (so after a worker forks)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minilm")
        return _pool


def examples_hash(examples: Mapping[str, Sequence[str]]) -> str:
    canonical = json.dumps({name: sorted(phrases) for name, phrases in sorted(examples.items())}, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def merged_examples(extra_examples: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """The default intents' phrases plus a tenant's: new intents are added, known ones extended."""
    merged = dict(DEFAULT_EXAMPLES)
    for name, phrases in (extra_examples or {}).items():
        merged[name] = (*merged.get(name, ()), *phrases)
    return merged


def classifier_get(examples: Mapping[str, Sequence[str]]) -> IntentClassifier:
    """Return the classifier for an example set, fitting it on first use."""
    key = examples_hash(examples)
    classifier = _classifiers.get(key)
    if classifier is None:
        classifier = IntentClassifier.fit(
            examples, embed_english=english_embedder(), out_of_scope=OUT_OF_SCOPE_EXAMPLES
        )
        _classifiers.put(key, classifier)
    return classifier


def classify_intent(
    text: str,
    *,
    extra_examples: Mapping[str, Sequence[str]] | None = None,
    language: str | None = None,
    min_probability: float = MIN_PROBABILITY,
    min_similarity: float = MIN_SIMILARITY,
) -> IntentResult:
    """Classify a message into the default intents plus a tenant's own (`extra_examples`), or `unknown`.

    `language` is the message's detected language: English messages are scored by the
    English head too.
    """
    classifier = classifier_get(merged_examples(extra_examples))
    pending = None
    if language in ENGLISH_HEAD_LANGUAGES and classifier.english is not None:
        # Both encoders release the GIL while they compute: MiniLM runs beside e5, not after it.
        pending = _english_pool().submit(minilm.embed_english, [text])
    vector = embed_queries([text])[0]
    english = pending.result()[0] if pending is not None else None
    return classifier.classify_vector(
        vector, english_vector=english, min_probability=min_probability, min_similarity=min_similarity
    )
