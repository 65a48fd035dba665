"""Documents on S3: the storage chosen by settings, against moto's real HTTP S3 endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from moto.server import ThreadedMotoServer

from apps.core.tenancy import tenant_context
from apps.knowledge.answers import knowledge_answer
from apps.knowledge.services import document_delete
from tests.conftest import TenantSetup
from tests.knowledge.conftest import upload

pytestmark = pytest.mark.django_db
BUCKET = "imaradesk-test-media"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_storage(s3_endpoint: str, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    # Changing STORAGES resets Django's storage handler and default_storage (setting_changed).
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": BUCKET, "endpoint_url": s3_endpoint, "region_name": "us-east-1"},
        },
    }
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def test_documents_are_stored_indexed_and_deleted_on_s3(
    tenant_a: TenantSetup, s3_storage: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with tenant_context(tenant_a.organization):
        document = upload(b"# Delivery\nWe deliver to Kisumu on Tuesdays and Fridays.\n", "delivery.md")
        assert document.status == "ready", document.error_message
        keys = [item["Key"] for item in s3_storage.list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert keys == [document.file.name] and keys[0].startswith(f"tenants/{tenant_a.schema}/knowledge/")
        answer = knowledge_answer(question="When do you deliver to Kisumu?", record_gap=False)
        assert "Tuesdays" in answer.text
        with django_capture_on_commit_callbacks(execute=True):
            document_delete(document=document)
        assert "Contents" not in s3_storage.list_objects_v2(Bucket=BUCKET)
