"""The knowledge base's one door to embeddings, so it can move to the AI router in one place."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.core.cache import cache

from apps.ai import embeddings

DIM = embeddings.DIM
Vector = npt.NDArray[np.float32]

# The HNSW index (migration 0004) is on the vectors in half precision: half the size, a
# quicker search, the same neighbours (benchmarks/retrieval.py). A query must order by the
# same expression for the planner to use it.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 256


def ann_distance(query_param: str) -> str:
    """SQL for the cosine distance the HNSW index orders by, to a query vector parameter."""
    return f"embedding::halfvec({DIM}) <=> {query_param}::halfvec({DIM})"


def passages_embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Embed passages (e5 `passage:`) as an (n, DIM) array of normalised rows."""
    return embeddings.embed_passages(texts)


def query_embed(text: str) -> Vector:
    """Embed a question (e5 `query:`), through a cache shared by the workers of this tenant."""
    key = "knowledge:q:" + hashlib.sha256(f"{embeddings.MODEL_NAME}\x00{text}".encode()).hexdigest()
    cached = cache.get(key)
    if isinstance(cached, bytes) and len(cached) == DIM * 4:
        return np.frombuffer(cached, dtype=np.float32)
    vector = embeddings.embed_query(text)
    cache.set(key, vector.astype(np.float32).tobytes(), timeout=settings.KNOWLEDGE_QUERY_CACHE_SECONDS)
    return vector


_LITERAL_FORMATS: dict[int, str] = {}


def vector_literal(vector: Vector) -> str:
    """pgvector's text form, for raw SQL parameters (float32 precision: 7 significant digits)."""
    values = vector.tolist()
    form = _LITERAL_FORMATS.get(len(values))
    if form is None:
        # One %-format over the whole tuple runs in C: ~5x faster than formatting each value.
        form = _LITERAL_FORMATS[len(values)] = "[" + ",".join(["%.7g"] * len(values)) + "]"
    return form % tuple(values)
