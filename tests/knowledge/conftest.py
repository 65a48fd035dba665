from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from apps.knowledge.indexing import document_index
from apps.knowledge.models import Chunk, Document
from apps.knowledge.services import document_create


@pytest.fixture(autouse=True)
def _media_in_tmp(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    yield


def upload(data: bytes, filename: str, **kwargs: Any) -> Document:
    """Upload and index synchronously (the Celery task calls the same service)."""
    document = document_create(upload=io.BytesIO(data), filename=filename, **kwargs)
    if document.status == "uploaded":
        indexed = document_index(document_id=document.pk)
        assert indexed is not None
        return indexed
    return document


def random_passages(document: Document, *, rare_category_id: int, seed: int, count: int = 600) -> None:
    """`count` live passages with random unit vectors: every 50th in the rare category (12 of
    600), every 60th tagged "rare" — a selective filter for an HNSW scan."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    Chunk.objects.bulk_create(
        Chunk(
            document=document,
            ordinal=i + 1,
            text=f"synthetic passage {i}",
            content_hash=f"{i:064d}",
            embedding=vectors[i],
            is_live=True,
            category_id=rare_category_id if i % 50 == 0 else None,
            tags=["rare"] if i % 60 == 0 else [],
        )
        for i in range(count)
    )
