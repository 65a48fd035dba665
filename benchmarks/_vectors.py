"""Synthetic 384-dim passage embeddings with the neighbourhood geometry of real e5 ones.

A corpus is topics → documents → passages. Each topic is a random unit centre; a document is
its topic's centre plus an offset; a passage is its document plus noise, normalised. Offsets
and noise are Gaussian with a power-law spectrum (variance of the i-th direction of a fixed
random basis ∝ i^-decay), as real embeddings have: most of their variance lies in a few dozen
directions, so their neighbourhoods have a low intrinsic dimension. The corpus grows by
documents (`passages` adds new documents), as a real knowledge base does; a query is a new
passage of an existing document (a customer's question near the passage that answers it).

`CALIBRATED` was fitted to the e5-small embeddings of ~32,000 short support texts of the
development data (`python -m benchmarks.embedding_geometry --data DIR` measures both and
prints the figures). `ISOTROPIC` is the earlier generator of `benchmarks/retrieval.py`:
300 centres and isotropic noise in all 384 dimensions, whose cluster-mates are nearly
equidistant (a far harder search than real embeddings; kept to compare).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DIM = 384
Matrix = np.ndarray[Any, np.dtype[np.float32]]
Labels = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class Geometry:
    topics: int
    per_document: int  # passages per document, on average
    document_spread: float  # a document's offset from its topic centre (expected norm)
    passage_spread: float  # a passage's offset from its document (expected norm)
    decay: float  # spectrum exponent: 0 is isotropic


CALIBRATED = Geometry(topics=500, per_document=4, document_spread=0.6, passage_spread=1.4, decay=1.25)
ISOTROPIC = Geometry(topics=300, per_document=4, document_spread=0.0, passage_spread=0.045 * math.sqrt(DIM), decay=0.0)
GEOMETRIES = {"calibrated": CALIBRATED, "isotropic": ISOTROPIC}


def normalise(vectors: Matrix) -> Matrix:
    normalised: Matrix = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return normalised


@dataclass
class VectorSpace:
    """A growing synthetic corpus; `passages` and `queries` return (unit vectors, topic of each)."""

    geometry: Geometry
    seed: int = 42
    rng: np.random.Generator = field(init=False)
    centres: Matrix = field(init=False)
    _basis: Matrix = field(init=False)
    _scale: Matrix = field(init=False)
    _documents: list[Matrix] = field(init=False, default_factory=list)
    _document_topics: list[Labels] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.centres = normalise(self.rng.normal(size=(self.geometry.topics, DIM)).astype(np.float32))
        self._basis = np.linalg.qr(self.rng.normal(size=(DIM, DIM)))[0].astype(np.float32)
        spectrum = np.arange(1, DIM + 1, dtype=np.float64) ** (-self.geometry.decay / 2)
        self._scale = np.asarray(spectrum / math.sqrt(float((spectrum**2).sum())), dtype=np.float32)

    def _noise(self, count: int, spread: float) -> Matrix:
        gaussian = self.rng.normal(size=(count, DIM)).astype(np.float32)
        return np.asarray(((gaussian * self._scale) @ self._basis.T) * spread, dtype=np.float32)

    def _draw(self, documents: Matrix, topics: Labels, count: int) -> tuple[Matrix, Labels]:
        chosen = self.rng.integers(0, len(documents), size=count)
        return normalise(documents[chosen] + self._noise(count, self.geometry.passage_spread)), topics[chosen]

    def passages(self, count: int) -> tuple[Matrix, Labels]:
        """`count` passages of ⌈count / per_document⌉ new documents."""
        documents = max(1, math.ceil(count / self.geometry.per_document))
        topics: Labels = self.rng.integers(0, self.geometry.topics, size=documents)
        centres: Matrix = self.centres[topics] + self._noise(documents, self.geometry.document_spread)
        self._documents.append(centres)
        self._document_topics.append(topics)
        return self._draw(centres, topics, count)

    def queries(self, count: int) -> tuple[Matrix, Labels]:
        """`count` new passages of documents already in the corpus."""
        return self._draw(np.concatenate(self._documents), np.concatenate(self._document_topics), count)
