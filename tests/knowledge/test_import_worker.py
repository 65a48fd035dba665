"""kb_import, and the Celery worker indexing an upload end to end."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.core.tenancy import tenant_context
from apps.knowledge.models import Category, Chunk, Document
from apps.knowledge.services import ImportStep, document_create, document_delete, documents_import
from tests.conftest import TenantSetup
from tests.knowledge import samples


@pytest.mark.django_db
def test_kb_import_folder_and_zip(tenant_a: TenantSetup, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    (folder / "billing").mkdir(parents=True)
    (folder / "faq.csv").write_bytes(b"question,answer\nDo you open on Sunday?,No.\nCan I pay by card?,Yes.\n")
    (folder / "billing" / "fees.md").write_bytes(b"# Fees\n\nDelivery costs 200 KES.\n")
    (folder / "photo.docx").write_bytes(samples.PNG)
    (folder / ".hidden.txt").write_bytes(b"skip me")
    out = io.StringIO()
    call_command("kb_import", str(folder), "--tenant", tenant_a.organization.slug, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/3] billing/fees.md: ready, 1 passages")
    assert lines[1].startswith("[2/3] faq.csv: ready, 2 passages")
    assert lines[2].startswith("[3/3] photo.docx: failed: This file type is not supported")
    assert "3 files" in lines[-1] and "2 ready" in lines[-1] and "1 failed" in lines[-1]

    archive = tmp_path / "kb.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("returns/policy.txt", "Returns are accepted within 14 days.")
    out = io.StringIO()
    call_command("kb_import", str(archive), "--tenant", tenant_a.schema, stdout=out)
    assert "[1/1] returns/policy.txt: ready" in out.getvalue()
    with tenant_context(tenant_a.organization):
        assert set(Category.objects.values_list("name", flat=True)) == {"billing", "returns"}
        assert Chunk.objects.filter(document__category__name="returns").count() == 1


@pytest.mark.django_db
def test_documents_import_indexes_now_and_reports_each_file(
    tenant_a: TenantSetup, tenant_b: TenantSetup, tmp_path: Path
) -> None:
    # kb_import's path (index="now"); the API's is index="queue" (test_api_admin).
    folder = tmp_path / "kb"
    (folder / "delivery").mkdir(parents=True)
    (folder / "delivery" / "zones.md").write_bytes(b"# Zones\n\nWe deliver to Kisumu on Tuesdays.\n")
    (folder / "notes.bin").write_bytes(samples.PNG)
    steps: list[ImportStep] = []
    with tenant_context(tenant_a.organization):
        outcome = documents_import(path=folder, index="now", on_step=steps.append)
        assert [(s.number, s.total, s.name) for s in steps] == [(1, 2, "delivery/zones.md"), (2, 2, "notes.bin")]
        assert [s.document.status if s.document else None for s in steps] == ["ready", "failed"]
        assert outcome.refused == [] and [d.status for d in outcome.documents] == ["ready", "failed"]
        zones = Chunk.objects.select_related("document__category").get(document=outcome.documents[0])
        category = zones.document.category if zones.document else None
        assert (zones.heading_path, zones.is_live, category.name if category else "") == ("Zones", True, "delivery")
    with tenant_context(tenant_b.organization):
        assert not Document.objects.exists() and not Chunk.objects.exists()
        assert not Category.objects.filter(name="delivery").exists()


@pytest.mark.django_db
def test_documents_import_queues_without_indexing(
    tenant_a: TenantSetup, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    (tmp_path / "hours.txt").write_bytes(b"Open 8am to 6pm.")
    with tenant_context(tenant_a.organization), django_capture_on_commit_callbacks() as callbacks:
        outcome = documents_import(path=tmp_path / "hours.txt")
        assert [d.status for d in outcome.documents] == ["uploaded"] and not Chunk.objects.exists()
    assert len(callbacks) >= 1  # the indexing task is queued after commit


@pytest.mark.django_db
def test_kb_import_refuses_an_unsafe_archive_clearly(tenant_a: TenantSetup, tmp_path: Path, settings: Any) -> None:
    settings.KNOWLEDGE_ZIP_MAX_UNCOMPRESSED_BYTES = 1000
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("a.txt", "a" * 5000)
    with pytest.raises(CommandError, match="expand to more than the allowed size"):
        call_command("kb_import", str(archive), "--tenant", tenant_a.organization.slug, stdout=io.StringIO())
    with tenant_context(tenant_a.organization):
        assert not Document.objects.exists()


@pytest.fixture
def _media_in_tmp() -> Iterator[None]:
    # The worker process reads the file: keep the configured MEDIA_ROOT it shares with us.
    yield


@pytest.mark.usefixtures("committed_db")
def test_upload_is_indexed_by_the_celery_worker(celery_worker: str, tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        document = document_create(upload=io.BytesIO(b"The warehouse is in Athi River."), filename="w.txt")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with tenant_context(tenant_a.organization):
                document = Document.objects.get(pk=document.pk)
            if document.status in ("ready", "failed"):
                break
            time.sleep(0.2)
        assert (document.status, document.progress, document.error_message) == ("ready", 100, "")
        with tenant_context(tenant_a.organization):
            assert Chunk.objects.filter(document=document, is_live=True).count() == 1
    finally:
        with tenant_context(tenant_a.organization):
            document_delete(document=document)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("filename", "data", "kind"),
    [
        ("returns.docx", samples.docx_bytes([("h1", "Returns"), ("p", "Keep your receipt.")]), "docx"),
        ("prices.xlsx", samples.xlsx_bytes({"Prices": [["item", "price"], ["Jug", "900 KES"]]}), "xlsx"),
        # An OOXML file is known by its [Content_Types].xml, whatever its name says.
        ("renamed.zip", samples.docx_bytes([("p", "Keep your receipt.")]), "docx"),
    ],
)
def test_one_office_file_is_imported_as_one_document_not_as_an_archive(
    tenant_a: TenantSetup, tmp_path: Path, filename: str, data: bytes, kind: str
) -> None:
    (tmp_path / filename).write_bytes(data)
    with tenant_context(tenant_a.organization):
        outcome = documents_import(path=tmp_path / filename, index="now")
        assert [(d.original_name, d.kind, d.status) for d in outcome.documents] == [(filename, kind, "ready")]
        assert outcome.refused == [] and Document.objects.count() == 1


@pytest.mark.django_db
def test_kb_import_of_a_docx_reports_one_file(tenant_a: TenantSetup, tmp_path: Path) -> None:
    path = tmp_path / "returns.docx"
    path.write_bytes(samples.docx_bytes([("h1", "Returns"), ("p", "Keep your receipt.")]))
    out = io.StringIO()
    call_command("kb_import", str(path), "--tenant", tenant_a.organization.slug, stdout=out)
    assert out.getvalue().splitlines()[0].startswith("[1/1] returns.docx: ready")
