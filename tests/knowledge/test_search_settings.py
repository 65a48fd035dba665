"""The search's planner and HNSW settings hold for the search alone, outside any transaction too."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.core.tenancy import tenant_context
from apps.knowledge.models import Category, Chunk, Document
from apps.knowledge.selectors import chunk_search
from apps.knowledge.services import category_get_or_create
from tests.conftest import TenantSetup
from tests.knowledge.conftest import random_passages, upload

pytestmark = pytest.mark.usefixtures("committed_db")


def _settings() -> tuple[str, str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_seqscan'), current_setting('hnsw.ef_search'),"
            " current_setting('hnsw.iterative_scan')"
        )
        row = cursor.fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_in_autocommit_the_settings_apply_to_the_search_and_end_with_it(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        assert connection.get_autocommit() and not connection.in_atomic_block
        before = _settings()
        document = upload(b"Random vectors are attached to this document.", "random-autocommit.txt")
        rare = category_get_or_create(name="Rare in autocommit")
        try:
            random_passages(document, rare_category_id=rare.pk, seed=11)
            # A selective filter returns k rows only if the iterative HNSW scan was on for the
            # search (the default scan stops at ef_search candidates, nearly none of them rare).
            hits = chunk_search(query="anything at all", k=8, category_id=rare.pk)
            assert len(hits) == 8 and all(hit.chunk.category_id == rare.pk for hit in hits)
            assert _settings() == before  # nothing leaked into the connection's later queries
            assert before[0] == "on"
        finally:
            Chunk.objects.filter(document=document).delete()
            Document.objects.filter(pk=document.pk).delete()
            Category.objects.filter(pk=rare.pk).delete()
