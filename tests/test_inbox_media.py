"""Customers' media in the inbox: served only to people who may see the conversation."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.roles import AGENT, KNOWLEDGE_EDITOR
from apps.accounts.services import user_create
from apps.contacts.models import Contact
from apps.conversations.lifecycle import conversation_takeover
from apps.conversations.models import Message
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from apps.whatsapp.models import Media
from tests.conftest import PASSWORD, TenantSetup

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4 not really"


@pytest.fixture(autouse=True)
def _media_in_tmp(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path)


def _message_with(tenant: TenantSetup, kind: str, mime: str, content: bytes, filename: str = "") -> Message:
    contact = Contact.objects.create(wa_id=f"2547{next(_numbers):08d}")
    conversation = conversation_create(contact=contact, account=tenant.whatsapp)
    media = Media(
        account=tenant.whatsapp, media_id=f"MEDIA-{next(_numbers)}", kind=kind, mime_type=mime, filename=filename
    )
    media.file.save(f"{kind}.bin", ContentFile(content), save=False)
    media.status = Media.Status.READY
    media.save()
    return Message.objects.create(
        conversation=conversation,
        direction="in",
        author_kind="customer",
        type=kind,
        media=media,
        sent_at=timezone.now(),
    )


def _signed_in(tenant: TenantSetup, user: User) -> Client:
    client = tenant.client()
    assert client.login(username=user.email, password=PASSWORD)
    return client


def test_a_photo_shows_inline_and_a_document_downloads(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        agent = user_create(email=f"media-{next(_numbers)}@alpha.test", password=PASSWORD, role=AGENT)
        photo = _message_with(tenant_a, "image", "image/png", PNG)
        document = _message_with(tenant_a, "document", "text/html", b"<script>alert(1)</script>", "invoice.html")
        client = _signed_in(tenant_a, agent)

        shown = client.get(f"/inbox/media/{photo.pk}/")
        assert shown.status_code == 200
        assert shown["Content-Type"] == "image/png" and b"".join(shown.streaming_content) == PNG  # type: ignore[attr-defined]
        assert shown["X-Content-Type-Options"] == "nosniff"

        # HTML (or anything not on the inline list) is never rendered by the browser.
        downloaded = client.get(f"/inbox/media/{document.pk}/")
        assert downloaded["Content-Type"] == "application/octet-stream"
        assert downloaded["Content-Disposition"].startswith("attachment")

        detail = client.get(f"/api/v1/conversations/{photo.conversation_id}/").json()
        assert detail["messages"][0]["media"] == {
            "kind": "image",
            "status": "ready",
            "mime_type": "image/png",
            "filename": "",
            "url": f"/inbox/media/{photo.pk}/",
            "error": "",
            "detail": "",
        }


def test_only_people_who_may_see_the_conversation_get_its_media(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        owner = user_create(email=f"media-{next(_numbers)}@alpha.test", password=PASSWORD, role=AGENT)
        colleague = user_create(email=f"media-{next(_numbers)}@alpha.test", password=PASSWORD, role=AGENT)
        editor = user_create(email=f"media-{next(_numbers)}@alpha.test", password=PASSWORD, role=KNOWLEDGE_EDITOR)
        message = _message_with(tenant_a, "document", "application/pdf", PDF, "contract.pdf")
        conversation_takeover(conversation=message.conversation, agent=owner)
        assert _signed_in(tenant_a, owner).get(f"/inbox/media/{message.pk}/").status_code == 200
        assert _signed_in(tenant_a, colleague).get(f"/inbox/media/{message.pk}/").status_code == 404
        assert _signed_in(tenant_a, editor).get(f"/inbox/media/{message.pk}/").status_code == 404
        assert tenant_a.client().get(f"/inbox/media/{message.pk}/").status_code == 302  # sign in first
    with tenant_context(tenant_b.organization):
        other = tenant_b.client()
        other.force_login(User.objects.get(email=tenant_b.admin_email))
    assert other.get(f"/inbox/media/{message.pk}/").status_code == 404  # another tenant: no such message
