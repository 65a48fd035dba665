"""kb_import, and the Celery worker indexing an upload end to end."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.core.tenancy import tenant_context
from apps.knowledge.models import Category, Chunk, Document
from apps.knowledge.services import document_create, document_delete
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
