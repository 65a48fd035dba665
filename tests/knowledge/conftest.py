from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.knowledge.indexing import document_index
from apps.knowledge.models import Document
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
