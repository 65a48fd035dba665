"""Agents' attachments: checked by content and size, stored, uploaded and sent through the outbox."""

from __future__ import annotations

import io
import itertools
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import AgentProfile, User
from apps.accounts.roles import AGENT
from apps.accounts.services import user_create
from apps.contacts.models import Contact
from apps.conversations.models import Conversation, Message
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from apps.whatsapp.attachments import AttachmentInvalid, attachment_inspect_bytes
from apps.whatsapp.models import Media, OutboxMessage
from apps.whatsapp.outbox import outbox_deliver, outbox_drain
from tests.ai_support import Fakes, ai_configure, ai_fakes, ai_fakes_server
from tests.conftest import PASSWORD, TenantSetup
from tests.fakes.graph_api import FakeGraphApi, Reply

pytestmark = pytest.mark.django_db
__all__ = ["ai_fakes", "ai_fakes_server"]  # fixtures used by name

_numbers = itertools.count(1)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\n"
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 16
AAC = b"\xff\xf1\x50\x80" + b"\x00" * 32
OGG = b"OggS\x00\x02" + b"\x00" * 32
AMR = b"#!AMR\n" + b"\x00" * 16
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 32
M4A = b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42" + b"\x00" * 32
THREE_GP = b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x00\x00" + b"\x00" * 32
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32


def _zip(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


DOCX = _zip("[Content_Types].xml", "word/document.xml")
XLSX = _zip("[Content_Types].xml", "xl/workbook.xml")


@pytest.fixture(autouse=True)
def _media_in_tmp(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path)


def _client(tenant: TenantSetup, user: User) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient(HTTP_HOST=tenant.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _agent() -> User:
    user = user_create(email=f"attach-{next(_numbers)}@example.test", password=PASSWORD, role=AGENT)
    AgentProfile.objects.filter(user=user).update(status=AgentProfile.Status.OFFLINE)
    return user


def _conversation(tenant: TenantSetup, *, window_open: bool = True) -> Conversation:
    window = timezone.now() + (timedelta(hours=5) if window_open else -timedelta(hours=1))
    contact = Contact.objects.create(wa_id=f"2547{next(_numbers):08d}", profile_name="Neema")
    return conversation_create(
        contact=contact, account=tenant.whatsapp, last_message_at=timezone.now(), window_expires_at=window
    )


def _post_file(client: APIClient, conversation: Conversation, name: str, content: bytes, **fields: str) -> Any:
    upload = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    return client.post(
        f"/api/v1/conversations/{conversation.pk}/messages/", {"file": upload, **fields}, format="multipart"
    )


def _stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


# --- the type comes from the content ------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "name", "kind", "mime"),
    [
        (JPEG, "photo.jpg", "image", "image/jpeg"),
        (PNG, "screenshot.png", "image", "image/png"),
        (PNG, "misnamed.pdf", "image", "image/png"),  # the name does not decide
        (PDF, "invoice.pdf", "document", "application/pdf"),
        (DOCX, "letter.docx", "document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (XLSX, "prices.xlsx", "document", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (OLE, "old.xls", "document", "application/vnd.ms-excel"),
        ("Bei: 1,200 KSh\nAsante sana — karibu tena!".encode(), "prices.txt", "document", "text/plain"),
        (MP3, "song.mp3", "audio", "audio/mpeg"),
        (AAC, "note.aac", "audio", "audio/aac"),
        (OGG, "voice.ogg", "audio", "audio/ogg"),
        (AMR, "voice.amr", "audio", "audio/amr"),
        (M4A, "voice.m4a", "audio", "audio/mp4"),
        (MP4, "clip.mp4", "video", "video/mp4"),
        (THREE_GP, "clip.3gp", "video", "video/3gpp"),
    ],
)
def test_the_type_is_read_from_the_content(content: bytes, name: str, kind: str, mime: str) -> None:
    attachment = attachment_inspect_bytes(content, filename=name)
    assert (attachment.kind, attachment.mime_type, attachment.size) == (kind, mime, len(content))


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (EXE, "photo.jpg"),  # a program renamed to look like a photo
        (GIF, "funny.gif"),
        (WEBP, "sticker.webp"),
        (_zip("notes.txt"), "archive.zip"),
        (OLE, "mystery.bin"),
    ],
)
def test_files_whatsapp_cannot_send_are_refused_by_name(content: bytes, name: str) -> None:
    with pytest.raises(AttachmentInvalid) as refused:
        attachment_inspect_bytes(content, filename=name)
    assert name in refused.value.message and "JPEG or PNG" in refused.value.message


def test_size_limits_per_type(settings: Any) -> None:
    settings.WHATSAPP_MEDIA_MAX_BYTES = {**settings.WHATSAPP_MEDIA_MAX_BYTES, "image": 1024, "document": 100_000}
    big_photo = JPEG + b"\x00" * 2048
    with pytest.raises(AttachmentInvalid) as refused:
        attachment_inspect_bytes(big_photo, filename="big.jpg")
    assert refused.value.extra == {"field": "file", "kind": "image", "size": len(big_photo), "limit": 1024}
    assert "big.jpg" in refused.value.message and "photos" in refused.value.message
    # The same number of bytes as a document is fine: the limit is the type's.
    assert attachment_inspect_bytes(PDF + b"\x00" * 2048, filename="big.pdf").kind == "document"
    with pytest.raises(AttachmentInvalid, match="empty"):
        attachment_inspect_bytes(b"", filename="nothing.pdf")


# --- the API, the outbox and the fake Graph API --------------------------------------------


def test_an_agent_sends_a_photo_with_a_caption_through_the_outbox(
    tenant_a: TenantSetup, graph_api: FakeGraphApi, tmp_path: Path
) -> None:
    with tenant_context(tenant_a.organization):
        agent = _agent()
        conversation = _conversation(tenant_a)
        client = _client(tenant_a, agent)
        response = _post_file(client, conversation, "parcel.jpg", JPEG, text="Your parcel, packed", client_id="att-1")
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["type"] == "image" and body["text"] == "Your parcel, packed"
        assert body["delivery"]["status"] == "pending"
        assert body["media"]["kind"] == "image" and body["media"]["url"] == f"/inbox/media/{body['id']}/"

        message = Message.objects.select_related("media", "outbox").get(pk=body["id"])
        assert message.media is not None and message.outbox is not None
        assert message.media.file.name.startswith(f"tenants/{tenant_a.schema}/whatsapp/media/")
        assert message.media.file.read() == JPEG and message.media.media_id is None
        assert message.outbox.media_id == message.media.pk
        conversation.refresh_from_db()
        assert (conversation.status, conversation.assigned_agent_id) == ("assigned", agent.pk)

        # A retried request (the same client id) stores and sends nothing twice.
        again = _post_file(client, conversation, "parcel.jpg", JPEG, text="Your parcel, packed", client_id="att-1")
        assert again.status_code == 201 and again.json()["id"] == body["id"]
        assert len(_stored_files(tmp_path)) == 1

        assert outbox_drain(account_id=tenant_a.whatsapp.pk, budget=5).sent == 1
        message.media.refresh_from_db()
        message.outbox.refresh_from_db()
        customer = conversation.contact.wa_id
    assert len(graph_api.uploads) == 1
    media_id, upload = next(iter(graph_api.uploads.items()))
    assert (upload.phone_number_id, upload.mime_type, upload.content) == (
        tenant_a.whatsapp.phone_number_id,
        "image/jpeg",
        JPEG,
    )
    assert message.media.media_id == media_id
    sent = graph_api.sent_messages()
    assert len(sent) == 1
    assert sent[0].body["type"] == "image"
    assert sent[0].body["image"] == {"id": media_id, "caption": "Your parcel, packed"}
    assert sent[0].body["to"] == customer
    assert message.outbox.status == OutboxMessage.Status.SENT and message.outbox.payload["image"]["id"] == media_id

    # The agent's own file shows in the thread for people who may see the conversation.
    with tenant_context(tenant_a.organization):
        page = tenant_a.client()
        assert page.login(username=agent.email, password=PASSWORD)
        served = page.get(f"/inbox/media/{body['id']}/")
        assert served.status_code == 200 and b"".join(served.streaming_content) == JPEG  # type: ignore[attr-defined]
        detail = client.get(f"/api/v1/conversations/{conversation.pk}/").json()
        assert detail["messages"][-1]["delivery"]["status"] == "sent"


def test_a_document_keeps_its_name(tenant_a: TenantSetup, graph_api: FakeGraphApi) -> None:
    with tenant_context(tenant_a.organization):
        conversation = _conversation(tenant_a)
        response = _post_file(_client(tenant_a, _agent()), conversation, "C:\\Users\\me\\Invoice 42.pdf", PDF)
        assert response.status_code == 201, response.content
        assert response.json()["media"]["filename"] == "Invoice 42.pdf"
        assert outbox_deliver(outbox_id=OutboxMessage.objects.get(to_wa_id=conversation.contact.wa_id).pk).state == (
            "sent"
        )
    document = graph_api.sent_messages()[0].body["document"]
    assert document["filename"] == "Invoice 42.pdf" and document["id"] in graph_api.uploads
    assert "caption" not in document


def test_a_failed_upload_is_retried_and_a_failed_send_reuses_the_upload(
    tenant_a: TenantSetup, graph_api: FakeGraphApi
) -> None:
    graph_api.script("media-upload", Reply(503), Reply(500, {"error": {"message": "Temporary", "code": 2}}))
    graph_api.script("messages", Reply(429, {"error": {"message": "Rate limit hit", "code": 130429}}))
    with tenant_context(tenant_a.organization):
        conversation = _conversation(tenant_a)
        response = _post_file(_client(tenant_a, _agent()), conversation, "receipt.png", PNG)
        assert response.status_code == 201
        row = OutboxMessage.objects.get(to_wa_id=conversation.contact.wa_id)
        outcomes = [outbox_deliver(outbox_id=row.pk).state for _ in range(3)]
        assert outcomes == ["retry", "retry", "retry"]  # upload 503, upload 500, then the send's 429
        row.refresh_from_db()
        assert row.status == OutboxMessage.Status.PENDING and row.error_code == 130429
        assert outbox_deliver(outbox_id=row.pk).state == "sent"
        row.refresh_from_db()
    uploads = [r for r in graph_api.requests if r.method == "POST" and r.path.endswith("/media")]
    assert len(uploads) == 3  # two failed uploads, one that worked; the retried send did not upload again
    assert len(graph_api.uploads) == 1
    media_id = next(iter(graph_api.uploads))
    assert [m.body["image"]["id"] for m in graph_api.sent_messages()] == [media_id, media_id]
    assert row.status == OutboxMessage.Status.SENT and row.attempts == 4


def test_a_permanent_upload_error_fails_the_message_with_metas_reason(
    tenant_a: TenantSetup, graph_api: FakeGraphApi
) -> None:
    graph_api.script("media-upload", Reply(400, {"error": {"message": "(#131053) Media upload error", "code": 131053}}))
    with tenant_context(tenant_a.organization):
        conversation = _conversation(tenant_a)
        response = _post_file(_client(tenant_a, _agent()), conversation, "receipt.png", PNG)
        row = OutboxMessage.objects.get(to_wa_id=conversation.contact.wa_id)
        assert outbox_deliver(outbox_id=row.pk).state == "failed"
        detail = _client(tenant_a, Message.objects.get(pk=response.json()["id"]).author).get(  # type: ignore[arg-type]
            f"/api/v1/conversations/{conversation.pk}/"
        )
    delivery = detail.json()["messages"][-1]["delivery"]
    assert delivery["status"] == "failed" and delivery["error_code"] == 131053 and "Media upload" in delivery["error"]
    assert graph_api.sent_messages() == []


def test_clear_refusals_and_nothing_stored(tenant_a: TenantSetup, settings: Any, tmp_path: Path) -> None:
    settings.WHATSAPP_MEDIA_MAX_BYTES = {**settings.WHATSAPP_MEDIA_MAX_BYTES, "image": 1024}
    with tenant_context(tenant_a.organization):
        client = _client(tenant_a, _agent())
        conversation = _conversation(tenant_a)

        program = _post_file(client, conversation, "photo.jpg", EXE)
        assert program.status_code == 400
        assert program.json()["code"] == "attachment_invalid" and "photo.jpg" in program.json()["message"]

        too_big = _post_file(client, conversation, "big.jpg", JPEG + b"\x00" * 4096)
        assert too_big.status_code == 400 and too_big.json()["extra"]["limit"] == 1024
        assert "1 KB" in too_big.json()["message"]

        voice = _post_file(client, conversation, "voice.ogg", OGG, text="listen")
        assert voice.status_code == 400 and voice.json()["code"] == "message_invalid"

        as_note = _post_file(client, conversation, "a.png", PNG, note="true")
        assert as_note.status_code == 400 and "note" in str(as_note.json())
        closed = _post_file(client, _conversation(tenant_a, window_open=False), "a.png", PNG)
        assert closed.status_code == 409 and closed.json()["code"] == "window_closed"
        assert "template" in closed.json()["message"]
        assert not OutboxMessage.objects.filter(kind="media").exists()
    assert _stored_files(tmp_path) == []  # refused files are never kept


def test_another_tenant_reaches_neither_the_conversation_nor_the_file(
    tenant_a: TenantSetup, tenant_b: TenantSetup, graph_api: FakeGraphApi
) -> None:
    with tenant_context(tenant_a.organization):
        alpha_agent = _agent()
        conversation = _conversation(tenant_a)
        sent = _post_file(_client(tenant_a, alpha_agent), conversation, "receipt.png", PNG).json()
    with tenant_context(tenant_b.organization):
        beta_agent = _agent()
        beta = _client(tenant_b, beta_agent)
        # Beta's agent posting to Alpha's conversation id finds nothing in Beta's schema.
        refused = _post_file(beta, conversation, "x.png", PNG)
        assert refused.status_code == 404
        assert not Media.objects.exists() or not Media.objects.filter(pk=sent["id"]).exists()
        page = tenant_b.client()
        assert page.login(username=beta_agent.email, password=PASSWORD)
        assert page.get(f"/inbox/media/{sent['id']}/").status_code == 404
    # Alpha's token on Beta's host is not Beta's user.
    with tenant_context(tenant_a.organization):
        token = Token.objects.get(user=alpha_agent).key
    foreign = APIClient(HTTP_HOST=tenant_b.domain)
    foreign.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert foreign.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 401
    with tenant_context(tenant_a.organization):
        media = Media.objects.get(messages__pk=sent["id"])
        assert media.file.name.startswith(f"tenants/{tenant_a.schema}/whatsapp/media/")


def test_a_caption_goes_out_in_the_customers_language(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.text = "Risiti yako iko hapa."
    with tenant_context(tenant_a.organization):
        ai_configure(ai_fakes, keys=("openai",))
        conversation = _conversation(tenant_a)
        Conversation.objects.filter(pk=conversation.pk).update(language="sw")
        conversation.refresh_from_db()
        agent = _client(tenant_a, _agent())
        response = _post_file(agent, conversation, "receipt.png", PNG, text="Here is your receipt.")
        assert response.status_code == 201, response.content
        message = Message.objects.get(pk=response.json()["id"])
        assert message.content["original"] == "Here is your receipt."
        outbox = OutboxMessage.objects.get(to_wa_id=conversation.contact.wa_id)
        assert outbox.payload["image"]["caption"] == "Risiti yako iko hapa."
