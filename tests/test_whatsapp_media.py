"""Customers' media downloads: swept when their task was lost, retried within a bound, then failed with a reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from django.utils.translation import override

from apps.contacts.models import Contact
from apps.conversations.models import Message
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp import tasks
from apps.whatsapp.client import GraphApiError
from apps.whatsapp.media import media_problem, media_register
from apps.whatsapp.models import Media
from apps.whatsapp.payloads import MediaRef
from tests.conftest import TenantSetup
from tests.fakes.graph_api import FakeGraphApi, Reply

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n fake image"


@pytest.fixture(autouse=True)
def _media_in_tmp(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The media ids the sweep queues (the test's transaction never commits, so record them)."""
    ids: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_on_commit", lambda task, media_id: ids.append(media_id))
    return ids


def _age(media: Media, minutes: int) -> None:
    past = timezone.now() - timedelta(minutes=minutes)
    Media.objects.filter(pk=media.pk).update(created=past)


def test_a_download_whose_task_was_lost_is_swept_and_stored(
    tenant_a: TenantSetup, graph_api: FakeGraphApi, queued: list[int]
) -> None:
    graph_api.media_files["IMG-LOST"] = (PNG, "image/png")
    with tenant_context(tenant_a.organization):
        media = media_register(account=tenant_a.whatsapp, kind="image", ref=MediaRef(media_id="IMG-LOST"))
        assert tasks.media_download_sweep_task() == 0  # just registered: its own task may still come
        _age(media, 10)
        assert tasks.media_download_sweep_task() == 1
        assert queued == [media.pk]
        assert tasks.media_download_task.run(media.pk) == Media.Status.READY
        media.refresh_from_db()
        assert media.file.read() == PNG
        assert tasks.media_download_sweep_task() == 0  # stored: nothing left to sweep
    assert "whatsapp-media-download-sweep" in django_settings.CELERY_BEAT_SCHEDULE


def test_failed_attempts_are_bounded_and_end_failed_with_a_reason_the_inbox_shows(
    tenant_a: TenantSetup, graph_api: FakeGraphApi, queued: list[int], settings: Any
) -> None:
    settings.WHATSAPP_MEDIA_DOWNLOAD_MAX_ATTEMPTS = 3
    graph_api.media_files["IMG-FLAKY"] = (PNG, "image/png")
    graph_api.script("media-info", *[Reply(503, {"error": {"message": "Service unavailable", "code": 2}})] * 5)
    with tenant_context(tenant_a.organization):
        media = media_register(account=tenant_a.whatsapp, kind="image", ref=MediaRef(media_id="IMG-FLAKY"))
        contact = Contact.objects.create(wa_id="254700111222")
        conversation = conversation_create(contact=contact, account=tenant_a.whatsapp)
        Message.objects.create(
            conversation=conversation, direction="in", author_kind="customer", type="image", media=media,
            sent_at=timezone.now(),
        )  # fmt: skip
        _age(media, 10)
        for attempt in (1, 2):
            with pytest.raises(GraphApiError):
                tasks.media_download_task.run(media.pk)  # called directly, a retry re-raises
            media.refresh_from_db()
            assert (media.status, media.attempts) == (Media.Status.PENDING, attempt)
            assert "Service unavailable" in media.error
            assert tasks.media_download_sweep_task() == 0  # its own retry is due later
            Media.objects.filter(pk=media.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
            assert tasks.media_download_sweep_task() == 1  # that retry was lost: the sweep takes over
        assert tasks.media_download_task.run(media.pk) == Media.Status.FAILED
        media.refresh_from_db()
        assert (media.status, media.attempts) == (Media.Status.FAILED, 3)
        assert "3 attempts" in media.error
        Media.objects.filter(pk=media.pk).update(next_attempt_at=timezone.now() - timedelta(days=1))
        assert tasks.media_download_sweep_task() == 0  # failed is final
        from apps.conversations.api import MessageSerializer

        shown = MessageSerializer(Message.objects.get(media=media)).data["media"]
        # The agent reads what to do; the technical reason stays at hand for whoever investigates.
        assert shown["status"] == "failed" and "3 attempts" in shown["detail"]
        assert shown["error"] == "The file could not be downloaded from WhatsApp. Ask the customer to send it again."
        with override("fr"):
            assert "WhatsApp" in media_problem(media) and "Ask the customer" not in media_problem(media)


def test_the_inbox_says_why_a_file_cannot_be_opened(tenant_a: TenantSetup, graph_api: FakeGraphApi) -> None:
    graph_api.media_files["BIG-STICKER"] = (b"x" * 600_000, "image/webp")
    with tenant_context(tenant_a.organization):
        sticker = media_register(account=tenant_a.whatsapp, kind="sticker", ref=MediaRef(media_id="BIG-STICKER"))
        tasks.media_download_task.run(sticker.pk)
        sticker.refresh_from_db()
        assert sticker.status == Media.Status.TOO_LARGE and "bytes" in sticker.error
        assert media_problem(sticker).startswith("The file is larger than 500.0\xa0KB")
        pending = media_register(account=tenant_a.whatsapp, kind="image", ref=MediaRef(media_id="NOT-YET"))
        assert media_problem(pending) == ""
        WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(transport=WhatsAppAccount.Transport.SANDBOX)
        account = WhatsAppAccount.objects.get(pk=tenant_a.whatsapp.pk)
        sandbox = media_register(account=account, kind="image", ref=MediaRef(media_id="SANDBOX-IMG"))
        assert media_problem(sandbox) == "Test (sandbox) numbers have no files to download."


def test_a_storage_error_is_retried(
    tenant_a: TenantSetup, graph_api: FakeGraphApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph_api.media_files["IMG-S3"] = (PNG, "image/png")
    storage = Media._meta.get_field("file").storage

    def unavailable(*args: Any, **kwargs: Any) -> str:
        raise OSError("S3 is unavailable")

    with tenant_context(tenant_a.organization):
        media = media_register(account=tenant_a.whatsapp, kind="image", ref=MediaRef(media_id="IMG-S3"))
        monkeypatch.setattr(storage, "save", unavailable)
        with pytest.raises(OSError, match="S3 is unavailable"):
            tasks.media_download_task.run(media.pk)
        media.refresh_from_db()
        assert (media.status, media.attempts) == (Media.Status.PENDING, 1)
        assert "S3 is unavailable" in media.error and media.next_attempt_at is not None
        monkeypatch.undo()
        Media.objects.filter(pk=media.pk).update(next_attempt_at=timezone.now())
        assert tasks.media_download_task.run(media.pk) == Media.Status.READY
