"""Upload → extract → chunk → embed → ready/failed, on the real database."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.core.tenancy import tenant_context
from apps.knowledge import embedding, indexing
from apps.knowledge.answers import knowledge_answer
from apps.knowledge.exceptions import DocumentTooLarge
from apps.knowledge.models import Article, Chunk, Document
from apps.knowledge.services import (
    article_reindex,
    article_save,
    document_create,
    document_delete,
    document_replace,
    document_update,
    knowledge_index_sweep,
)
from apps.knowledge.tasks import article_index_task
from tests.conftest import TenantSetup
from tests.knowledge import samples
from tests.knowledge.conftest import upload

pytestmark = pytest.mark.django_db

MD_V1 = b"""# Shipping
We ship to every county in Kenya.

# Returns
Returns are accepted within 14 days with the receipt.

# Warranty
Phones carry a one year warranty.
"""


@pytest.mark.parametrize(
    ("data", "filename", "kind", "needle"),
    [
        (samples.pdf_bytes([["Opening hours are 8am to 5pm."], ["Closed on Sundays."]]), "hours.pdf", "pdf", "Sundays"),
        (samples.docx_bytes([("h1", "Returns"), ("p", "Keep your receipt.")]), "returns.docx", "docx", "receipt"),
        (b"Our office is on Moi Avenue.\n\nCall us on 0700 000 000.", "office.txt", "txt", "Moi Avenue"),
        (b"question,answer\nHow do I pay?,Use paybill 123456.\n", "faq.csv", "csv", "paybill"),
        (b"# Fees\n\n- Delivery costs 200 KES.\n", "fees.md", "md", "200 KES"),
        (b"<html><body><h2>Contact</h2><p>Email help@example.com</p></body></html>", "c.html", "html", "help@"),
        (samples.xlsx_bytes({"Prices": [["item", "price"], ["Jug", "900 KES"]]}), "p.xlsx", "xlsx", "900 KES"),
    ],
)
def test_every_format_is_indexed(tenant_a: TenantSetup, data: bytes, filename: str, kind: str, needle: str) -> None:
    with tenant_context(tenant_a.organization):
        document = upload(data, filename)
        assert (document.status, document.progress, document.kind, document.error_message) == ("ready", 100, kind, "")
        chunks = list(Chunk.objects.filter(document=document))
        assert chunks and any(needle in chunk.text for chunk in chunks)
        assert all(chunk.is_live and chunk.search_vector for chunk in chunks)
        # The stored name is a UUID (checking `filename not in name` failed when the UUID ended like it).
        stored = document.file.name
        # Under the tenant's own folder: deleting the tenant deletes it, a bucket policy can scope it.
        assert re.fullmatch(rf"tenants/{tenant_a.schema}/knowledge/[0-9a-f]{{32}}\.[a-z]+", stored)
        if kind == "pdf":
            assert sorted({c.page or 0 for c in chunks}) == [1, 2]


def test_a_pdf_whose_text_holds_nul_is_indexed(tenant_a: TenantSetup) -> None:
    # PDF fonts can map a glyph to U+0000; PostgreSQL text cannot hold it.
    data = samples.pdf_bytes([["Refunds take\x00 five days.", "Call us any time."]])
    with tenant_context(tenant_a.organization):
        document = upload(data, "refunds.pdf")
        assert (document.status, document.error_code) == ("ready", "")
        (chunk,) = Chunk.objects.filter(document=document)
        assert chunk.text == "Refunds take\ufffd five days. Call us any time."


@pytest.mark.parametrize(
    ("data", "filename", "code"),
    [
        (samples.pdf_encrypted([["Secret"]]), "locked.pdf", "document_encrypted"),
        (b"%PDF-1.7\n" + b"\x00garbage" * 20, "broken.pdf", "document_corrupt"),
        (b"\n\n   \n", "empty.txt", "document_empty"),
        (samples.PNG, "photo.pdf", "document_unsupported"),
        (samples.docx_bomb(4 * 1024 * 1024), "cv.docx", "document_zip_bomb"),
        # UTF-16 that cannot be decoded: an odd byte at the end, a lone surrogate inside.
        pytest.param(samples.pdf_with_oversized_to_unicode(), "cmap.pdf", "document_corrupt", id="pdf-limit-reached"),
        pytest.param(samples.UNCLOSED_QUOTE_CSV, "faq.csv", "document_corrupt", id="csv-unclosed-quote"),
        pytest.param(
            b"\xff\xfe" + "Refunds take five days.".encode("utf-16-le") + b"!",
            "odd.txt",
            "document_undecodable",
            id="utf16-odd-length",
        ),
        pytest.param(
            b"\xff\xfe" + "Refunds ".encode("utf-16-le") + b"\x00\xd8" + "take five days.".encode("utf-16-le"),
            "lone.txt",
            "document_undecodable",
            id="utf16-lone-surrogate",
        ),
    ],
)
def test_bad_documents_fail_with_a_message_and_no_chunks(
    tenant_a: TenantSetup, settings: Any, data: bytes, filename: str, code: str
) -> None:
    settings.KNOWLEDGE_ZIP_MAX_RATIO = 50
    with tenant_context(tenant_a.organization):
        document = upload(data, filename)
        document.refresh_from_db()
        assert (document.status, document.error_code) == ("failed", code)
        assert document.error_message
        assert not Chunk.objects.filter(document=document).exists()


def test_too_large_upload_is_refused_and_nothing_is_stored(tenant_a: TenantSetup, settings: Any) -> None:
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 100
    with tenant_context(tenant_a.organization):
        with pytest.raises(DocumentTooLarge):
            upload(b"x" * 101, "big.txt")
        assert not Document.objects.exists()


def test_pipeline_walks_through_its_states(tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(indexing, "document_progress_publish", lambda d: seen.append((d.status, d.progress)))
    with tenant_context(tenant_a.organization):
        upload(MD_V1, "policies.md")
    states = [status for status, _progress in seen]
    assert states[0] == "extracting" and "chunking" in states and "embedding" in states
    assert seen[-1] == ("ready", 100)
    progress = [p for _s, p in seen]
    assert progress == sorted(progress)


def test_reupload_embeds_only_changed_chunks(tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded: list[str] = []
    original = embedding.passages_embed

    def counting(texts: list[str]) -> np.ndarray[Any, Any]:
        embedded.extend(texts)
        return original(texts)

    monkeypatch.setattr("apps.knowledge.indexing.passages_embed", counting)
    with tenant_context(tenant_a.organization):
        document = upload(MD_V1, "policies.md")
        assert (document.chunks_embedded, document.chunks_reused) == (3, 0)
        first_ids = set(Chunk.objects.filter(document=document).values_list("id", flat=True))
        embedded.clear()

        changed = MD_V1.replace(b"14 days", b"30 days")
        document_replace(document=document, upload=io.BytesIO(changed), filename="policies-v2.md")
        document = indexing.document_index(document_id=document.pk)  # type: ignore[assignment]
        assert document is not None
        assert (document.chunks_embedded, document.chunks_reused) == (1, 2)
        assert len(embedded) == 1 and "30 days" in embedded[0]
        chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
        assert [c.heading_path for c in chunks] == ["Shipping", "Returns", "Warranty"]
        assert len(first_ids & {c.pk for c in chunks}) == 2


def test_delete_removes_chunks_and_file(tenant_a: TenantSetup, django_capture_on_commit_callbacks: Any) -> None:
    with tenant_context(tenant_a.organization):
        document = upload(b"Parking is free for customers.", "parking.txt")
        name = document.file.name
        assert default_storage.exists(name)
        with django_capture_on_commit_callbacks(execute=True):
            document_delete(document=document)
        assert not Chunk.objects.exists()
        assert not default_storage.exists(name)
        assert not Path(default_storage.path(name)).exists()


def test_unpublishing_and_tags_follow_to_chunks_without_reembedding(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        document = upload(b"Gift cards never expire.", "gifts.txt")
        document_update(document=document, title="Gifts", category=None, tags=["Cards", "cards "], published=False)
        chunk = Chunk.objects.get(document=document)
        assert (chunk.is_live, chunk.tags) == (False, ["cards"])


def test_stuck_indexing_is_queued_again(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        stuck = upload(b"Stuck text.", "stuck.txt")
        fresh = upload(b"Fresh text.", "fresh.txt")
        long_ago = timezone.now() - timedelta(hours=1)
        Document.objects.filter(pk=stuck.pk).update(status="embedding", progress=60, updated=long_ago)
        Document.objects.filter(pk=fresh.pk).update(status="embedding", progress=60)
        assert knowledge_index_sweep(stuck_after_seconds=900) == 1
        stuck.refresh_from_db()
        fresh.refresh_from_db()
        assert (stuck.status, stuck.progress, fresh.status) == ("uploaded", 0, "embedding")


def test_pdf_headings_reach_passages_and_citations(tenant_a: TenantSetup) -> None:
    data = samples.pdf_with_headings(
        [
            [("title", "Shop Guide"), ("h1", "Delivery"), ("p", "We deliver anywhere in Mombasa within one day.")],
            [("h1", "Warranty"), ("p", "Phones carry a one year warranty against factory defects.")],
        ]
    )
    with tenant_context(tenant_a.organization):
        document = upload(data, "guide.pdf")
        assert (document.status, document.kind) == ("ready", "pdf")
        chunks = {c.heading_path: c for c in Chunk.objects.filter(document=document)}
        assert set(chunks) == {"Shop Guide > Delivery", "Shop Guide > Warranty"}
        assert chunks["Shop Guide > Warranty"].page == 2
        answer = knowledge_answer(question="How long is the warranty on a phone?", record_gap=False)
        assert answer.citations and answer.citations[0].heading_path == "Shop Guide > Warranty"
        assert (answer.citations[0].page, answer.citations[0].title) == (2, "guide")


def test_markdown_of_headings_only_is_indexed_by_its_headings(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        document = upload(b"# Opening hours\n\n## Weekdays 8am to 6pm\n\n## Closed on Sundays\n", "hours.md")
        assert document.status == "ready"
        texts = sorted(Chunk.objects.filter(document=document).values_list("text", flat=True))
        assert texts == ["Closed on Sundays", "Weekdays 8am to 6pm"]


def test_a_document_without_any_passage_fails_as_empty(tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexing, "passages_build", lambda blocks, **kwargs: [])
    with tenant_context(tenant_a.organization):
        document = upload(b"Some text.", "note.txt")
        assert (document.status, document.error_code) == ("failed", "document_empty")


def test_a_failed_article_index_is_recorded_and_not_swept_forever(
    tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    def outage(texts: list[str]) -> list[Any]:
        raise RuntimeError("embedding model unavailable")

    with tenant_context(tenant_a.organization):
        article = article_save(title="Refunds", body="Refunds take five days.", status=Article.Status.PUBLISHED)
        assert indexing.article_index(article_id=article.pk) is not None
        article = article_save(article=article, title="Refunds", body="Refunds take ten days.", status="published")
        monkeypatch.setattr(indexing, "passages_embed", outage)
        with pytest.raises(RuntimeError):
            indexing.article_index(article_id=article.pk)
        article.refresh_from_db()
        assert article.index_status == "failed" and "unexpectedly" in article.index_error
        # Like a document: the previous version's passages are not served as the new text.
        assert not Chunk.objects.filter(article=article).exists()
        later = timezone.now() + timedelta(hours=1)
        assert knowledge_index_sweep(stuck_after_seconds=900, now=later) == 0
        # Re-indexing (the admin action) or the next save tries again, and success clears the error.
        monkeypatch.undo()
        article_reindex(article=article)
        assert (article.index_status, article.index_error) == ("uploaded", "")
        indexed = indexing.article_index(article_id=article.pk)
        assert indexed is not None and (indexed.index_status, indexed.index_error) == ("ready", "")
        assert Chunk.objects.filter(article=article, text__contains="ten days").exists()


def test_article_index_task_retries_a_few_times_then_stops(
    tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def outage(texts: list[str]) -> list[Any]:
        calls.append(len(texts))
        raise RuntimeError("embedding model unavailable")

    monkeypatch.setattr(indexing, "passages_embed", outage)
    with tenant_context(tenant_a.organization):
        article = article_save(title="Refunds", body="Refunds take five days.", status=Article.Status.PUBLISHED)
        result = article_index_task.apply(args=(article.pk,))
        assert result.failed() and isinstance(result.result, RuntimeError)
        assert article_index_task.max_retries is not None
        assert len(calls) == article_index_task.max_retries + 1 <= 4
        article.refresh_from_db()
        assert article.index_status == "failed" and article.index_error


@pytest.mark.parametrize("source", ["document", "article"])
def test_a_second_concurrent_run_does_not_duplicate_passages(
    tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    # Re-index clicked during the first run: the other run embeds and commits while this one
    # is embedding (after it read the passages it could keep, before it locks the row).
    original = embedding.passages_embed
    interleaved: list[bool] = []

    def embed_while_the_other_run_commits(texts: list[str]) -> Any:
        if not interleaved:
            interleaved.append(True)
            run()
        return original(texts)

    with tenant_context(tenant_a.organization):
        if source == "document":
            created = document_create(upload=io.BytesIO(MD_V1), filename="policies.md", queue_index=False)

            def run() -> Any:
                return indexing.document_index(document_id=created.pk)

            where: dict[str, Any] = {"document": created}
        else:
            article = article_save(title="Policies", body=MD_V1.decode(), status=Article.Status.PUBLISHED)

            def run() -> Any:
                return indexing.article_index(article_id=article.pk)

            where = {"article": article}
        monkeypatch.setattr(indexing, "passages_embed", embed_while_the_other_run_commits)
        run()
        assert interleaved
        ordinals = list(Chunk.objects.filter(**where).values_list("ordinal", flat=True))
        assert len(ordinals) == 3 + (source == "article") and sorted(ordinals) == list(range(len(ordinals)))
