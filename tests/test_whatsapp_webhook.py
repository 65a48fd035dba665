"""The inbound path: signature, storage before the ack, dedup, routing, parsing and recording."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection

from apps.contacts.models import ConsentRecord, Contact, ServiceWindow
from apps.conversations.models import Conversation, Message
from apps.core.tenancy import schema_context, tenant_context
from apps.tenants.models import WebhookEvent
from apps.whatsapp.models import OutboxMessage
from apps.whatsapp.processing import webhook_event_process
from apps.whatsapp.webhooks import BAD_SIGNATURE_COUNTER, sign
from tests import whatsapp_payloads as wp
from tests.conftest import TenantSetup, admin_user

pytestmark = pytest.mark.django_db


def _process_all() -> None:
    for event_id in WebhookEvent.objects.filter(state=WebhookEvent.State.PENDING).values_list("pk", flat=True):
        webhook_event_process(event_id=event_id)


def _number(tenant: TenantSetup) -> str:
    return tenant.whatsapp.phone_number_id


# --- signature and storage ----------------------------------------------------------------


def test_a_signed_message_is_stored_before_the_ack(tenant_a: TenantSetup) -> None:
    response = wp.post(wp.text(_number(tenant_a), "wamid.A1", "Habari, where is my order?"))
    assert response.status_code == 200
    assert response.json() == {"received": 1, "new": 1}
    event = WebhookEvent.objects.get(dedup_key="m:wamid.A1")
    assert event.tenant_id == tenant_a.organization.pk
    assert event.state == WebhookEvent.State.PENDING
    assert event.signature == "platform"


def test_bad_or_missing_signature_is_401_and_stores_nothing(tenant_a: TenantSetup) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    before = int(client.get(BAD_SIGNATURE_COUNTER) or 0)
    payload = wp.text(_number(tenant_a), "wamid.BAD", "hello")
    assert wp.post(payload, signature="sha256=" + "0" * 64).status_code == 401
    assert wp.post(payload, signature="").status_code == 401
    assert wp.post(payload, secret="someone-elses-secret").status_code == 401
    assert not WebhookEvent.objects.filter(dedup_key="m:wamid.BAD").exists()
    assert int(client.get(BAD_SIGNATURE_COUNTER) or 0) == before + 3


def test_signature_covers_the_raw_bytes_not_the_json(tenant_a: TenantSetup) -> None:
    payload = wp.text(_number(tenant_a), "wamid.WS", "same json, other bytes")
    compact = json.dumps(payload, separators=(",", ":")).encode()
    spaced = json.dumps(payload, indent=2).encode()
    assert wp.post(spaced, signature=sign(compact, settings.WHATSAPP_APP_SECRET)).status_code == 401
    assert wp.post(compact, signature=sign(compact, settings.WHATSAPP_APP_SECRET)).status_code == 200


def test_a_number_with_its_own_meta_app_is_verified_with_its_secret(tenant_b: TenantSetup) -> None:
    account = tenant_b.whatsapp
    account.app_secret = "beta-own-app-secret"
    account.save()
    payload = wp.text(_number(tenant_b), "wamid.OWN", "hi")
    assert wp.post(payload, secret="beta-own-app-secret").status_code == 200
    assert WebhookEvent.objects.get(dedup_key="m:wamid.OWN").signature == "account"


def _two_numbers(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """One delivery whose entry holds the changes of two deliveries (Meta batches changes this way)."""
    payload: dict[str, Any] = json.loads(json.dumps(first))
    payload["entry"][0]["changes"] += second["entry"][0]["changes"]
    return payload


def test_a_numbers_own_secret_cannot_sign_for_another_tenants_number(
    tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    account = tenant_b.whatsapp
    account.app_secret = "beta-own-app-secret"
    account.save()
    forged = _two_numbers(
        wp.text(_number(tenant_b), "wamid.FB", "hi from beta's customer"),
        wp.text(_number(tenant_a), "wamid.FA", "STOP", from_wa_id="254711000009"),
    )
    response = wp.post(forged, secret="beta-own-app-secret")
    assert response.status_code == 401
    assert response.json()["extra"] == {"phone_number_ids": [_number(tenant_a)]}
    assert not WebhookEvent.objects.filter(dedup_key__in=["m:wamid.FA", "m:wamid.FB"]).exists()

    # Signed with the platform's secret, the same two-number delivery is Meta's own.
    assert wp.post(forged).json() == {"received": 2, "new": 2}
    events = WebhookEvent.objects.filter(dedup_key__in=["m:wamid.FA", "m:wamid.FB"])
    assert {(e.dedup_key, e.tenant_id) for e in events} == {
        ("m:wamid.FA", tenant_a.organization.pk),
        ("m:wamid.FB", tenant_b.organization.pk),
    }


def test_two_numbers_that_share_one_meta_app_may_share_a_delivery(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    for tenant in (tenant_a, tenant_b):
        tenant.whatsapp.app_secret = "one-meta-app-for-both"
        tenant.whatsapp.save()
    payload = _two_numbers(wp.text(_number(tenant_a), "wamid.SA", "a"), wp.text(_number(tenant_b), "wamid.SB", "b"))
    assert wp.post(payload, secret="one-meta-app-for-both").json() == {"received": 2, "new": 2}


def test_duplicate_deliveries_are_stored_and_recorded_once(tenant_a: TenantSetup) -> None:
    payload = wp.text(_number(tenant_a), "wamid.DUP", "asante")
    assert wp.post(payload).json() == {"received": 1, "new": 1}
    assert wp.post(payload).json() == {"received": 1, "new": 0}
    _process_all()
    with tenant_context(tenant_a.organization):
        assert Message.objects.filter(wamid="wamid.DUP").count() == 1


def test_storage_failure_is_a_5xx_so_meta_retries(tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from apps.whatsapp import webhooks
    from imaradesk.asgi import application

    def broken(rows: Any) -> Any:
        raise RuntimeError("database is down")

    monkeypatch.setattr(webhooks, "_store", broken)
    body = json.dumps(wp.text(_number(tenant_a), "wamid.DOWN", "hello")).encode()

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.post(
                "/webhooks/whatsapp/",
                content=body,
                headers={"X-Hub-Signature-256": sign(body, settings.WHATSAPP_APP_SECRET)},
            )

    response = asyncio.run(call())
    assert response.status_code == 503
    assert response.json()["code"] == "storage_unavailable"


def test_verify_handshake() -> None:
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    ok = client.get(
        "/webhooks/whatsapp/",
        {"hub.mode": "subscribe", "hub.verify_token": settings.WHATSAPP_VERIFY_TOKEN, "hub.challenge": "1158201444"},
    )
    assert ok.status_code == 200
    assert ok.content == b"1158201444"
    wrong = client.get(
        "/webhooks/whatsapp/", {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert wrong.status_code == 403


def test_the_webhook_is_only_on_the_public_host(tenant_a: TenantSetup) -> None:
    from django.test import Client

    body = json.dumps(wp.text(_number(tenant_a), "wamid.HOST", "x")).encode()
    response = Client(HTTP_HOST=tenant_a.domain).post(
        "/webhooks/whatsapp/",
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=sign(body, settings.WHATSAPP_APP_SECRET),
    )
    assert response.status_code == 404


# --- routing ------------------------------------------------------------------------------


def test_each_number_reaches_only_its_tenant(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    wp.post(wp.text(_number(tenant_a), "wamid.RA", "for alpha", from_wa_id="254711111111"))
    wp.post(wp.text(_number(tenant_b), "wamid.RB", "for beta", from_wa_id="254722222222"))
    _process_all()
    with tenant_context(tenant_a.organization):
        assert list(Message.objects.values_list("text", flat=True)) == ["for alpha"]
        assert list(Contact.objects.values_list("wa_id", flat=True)) == ["254711111111"]
    with tenant_context(tenant_b.organization):
        assert list(Message.objects.values_list("text", flat=True)) == ["for beta"]
        assert list(Contact.objects.values_list("wa_id", flat=True)) == ["254722222222"]


def test_an_unknown_number_is_acknowledged_and_kept_as_an_orphan(tenant_a: TenantSetup) -> None:
    response = wp.post(wp.text("999999999999999", "wamid.ORPHAN", "who owns me?"))
    assert response.status_code == 200
    event = WebhookEvent.objects.get(dedup_key="m:wamid.ORPHAN")
    assert event.state == WebhookEvent.State.ORPHAN
    assert event.tenant is None
    assert webhook_event_process(event_id=event.pk) == WebhookEvent.State.ORPHAN
    with tenant_context(tenant_a.organization):
        assert not Message.objects.filter(wamid="wamid.ORPHAN").exists()


def test_the_ingestion_console_shows_a_tenant_only_its_events(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    wp.post(wp.text(_number(tenant_a), "wamid.CA", "alpha"))
    wp.post(wp.text(_number(tenant_b), "wamid.CB", "beta"))
    client = tenant_a.client()
    client.post("/admin/login/", {"username": tenant_a.admin_email, "password": tenant_a.password})
    page = client.get("/admin/tenants/webhookevent/")
    assert page.status_code == 200
    assert _number(tenant_a).encode() in page.content
    assert _number(tenant_b).encode() not in page.content
    own = WebhookEvent.objects.get(dedup_key="m:wamid.CA")
    other = WebhookEvent.objects.get(dedup_key="m:wamid.CB")
    assert client.get(f"/admin/tenants/webhookevent/{own.pk}/change/").status_code == 200
    assert client.get(f"/admin/tenants/webhookevent/{other.pk}/change/").status_code == 302  # "does not exist"
    numbers = client.get("/admin/tenants/whatsappaccount/").content.decode()
    assert tenant_a.whatsapp.phone_number_id in numbers
    assert tenant_b.whatsapp.phone_number_id not in numbers


# --- every message type -------------------------------------------------------------------

MESSAGE_BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "text": ({"type": "text", "text": {"body": "Nataka kulipa"}}, "text"),
    "image": ({"type": "image", "image": {"id": "MEDIA1", "mime_type": "image/jpeg", "caption": "receipt"}}, "image"),
    "audio": ({"type": "audio", "audio": {"id": "MEDIA2", "mime_type": "audio/ogg", "voice": True}}, "audio"),
    "video": ({"type": "video", "video": {"id": "MEDIA3", "mime_type": "video/mp4"}}, "video"),
    "document": (
        {"type": "document", "document": {"id": "MEDIA4", "mime_type": "application/pdf", "filename": "inv.pdf"}},
        "document",
    ),
    "sticker": (
        {"type": "sticker", "sticker": {"id": "MEDIA5", "mime_type": "image/webp", "animated": False}},
        "sticker",
    ),
    "location": (
        {"type": "location", "location": {"latitude": -1.2921, "longitude": 36.8219, "name": "Nairobi CBD"}},
        "location",
    ),
    "contacts": (
        {"type": "contacts", "contacts": [{"name": {"formatted_name": "Amina"}, "phones": [{"phone": "+254700"}]}]},
        "contacts",
    ),
    "button_reply": (
        {"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "pay", "title": "Pay"}}},
        "interactive",
    ),
    "list_reply": (
        {
            "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": {"id": "r2", "title": "Track", "description": "Where"}},
        },
        "interactive",
    ),
    "template_button": ({"type": "button", "button": {"payload": "YES", "text": "Yes please"}}, "button"),
    "referral": (
        {
            "type": "text",
            "text": {"body": "I saw your ad"},
            "referral": {"source_type": "ad", "source_id": "123", "headline": "Sale"},
        },
        "text",
    ),
    "unsupported": (
        {"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]},
        "unsupported",
    ),
    "future_type": ({"type": "hologram", "hologram": {"id": "X"}}, "unsupported"),
}


@pytest.mark.parametrize("name", sorted(MESSAGE_BODIES))
def test_every_message_type_is_parsed_and_recorded(tenant_a: TenantSetup, name: str) -> None:
    body, stored_type = MESSAGE_BODIES[name]
    wamid = f"wamid.TYPE.{name}"
    assert wp.post(wp.message(_number(tenant_a), wamid, body)).status_code == 200
    _process_all()
    assert WebhookEvent.objects.get(dedup_key=f"m:{wamid}").state == WebhookEvent.State.PROCESSED
    with tenant_context(tenant_a.organization):
        message = Message.objects.select_related("conversation__contact", "media").get(wamid=wamid)
        assert message.type == stored_type
        assert message.direction == Message.Direction.INBOUND
        assert message.conversation.contact.profile_name == "Wanjiru"
        if name == "image":
            assert message.text == "receipt"
            assert message.media is not None and message.media.media_id == "MEDIA1"
        if name == "audio":
            assert message.content["media"]["voice"] is True
        if name == "location":
            assert message.content["location"]["name"] == "Nairobi CBD"
        if name in ("button_reply", "list_reply"):
            assert message.content["reply"]["kind"] == name
        if name == "template_button":
            assert message.content["reply"] == {"kind": "template_button", "id": "YES", "title": "Yes please"}
        if name == "referral":
            assert message.content["referral"]["source_type"] == "ad"
        if name == "unsupported":
            assert message.content["errors"][0]["code"] == 131051


def test_a_malformed_message_is_recorded_as_failed_not_dropped(tenant_a: TenantSetup) -> None:
    payload = wp.message(_number(tenant_a), "wamid.BROKEN", {"type": "location", "location": {"latitude": "north"}})
    assert wp.post(payload).status_code == 200
    event = WebhookEvent.objects.get(dedup_key="m:wamid.BROKEN")
    assert webhook_event_process(event_id=event.pk) == WebhookEvent.State.FAILED
    event.refresh_from_db()
    assert "latitude" in event.error


# --- conversations, contacts, consent -----------------------------------------------------


def test_messages_thread_into_one_conversation_and_open_the_window(tenant_a: TenantSetup) -> None:
    wp.post(wp.text(_number(tenant_a), "wamid.T1", "Hello", timestamp=1_800_000_000))
    wp.post(wp.text(_number(tenant_a), "wamid.T2", "Are you there?", timestamp=1_800_000_060))
    _process_all()
    with tenant_context(tenant_a.organization):
        conversation = Conversation.objects.get()
        assert conversation.messages.count() == 2
        assert conversation.unread_count == 2
        assert conversation.last_message_preview == "Are you there?"
        # The window is the number's: this contact's on this number, shared by its conversations there.
        window = conversation.window
        assert (window.contact_id, window.account_id) == (conversation.contact_id, tenant_a.whatsapp.pk)
        assert window.expires_at is not None
        assert window.expires_at.timestamp() == 1_800_000_060 + 24 * 3600


@pytest.mark.parametrize(
    ("keyword", "action", "confirmation_start"),
    [
        ("STOP", ConsentRecord.Action.OPT_OUT, "You will no longer"),
        ("Acha", ConsentRecord.Action.OPT_OUT, "Hutapokea"),
        ("arrêt", ConsentRecord.Action.OPT_OUT, "Vous ne recevrez"),
        ("Parar!", ConsentRecord.Action.OPT_OUT, "Não vai receber"),
        ("توقف", ConsentRecord.Action.OPT_OUT, "لن تتلقى"),
        ("START", ConsentRecord.Action.OPT_IN, "You are subscribed"),
        ("anza", ConsentRecord.Action.OPT_IN, "Umejiunga"),
    ],
)
def test_stop_and_start_keywords_flip_consent_and_confirm(
    tenant_a: TenantSetup, keyword: str, action: str, confirmation_start: str
) -> None:
    wp.post(wp.text(_number(tenant_a), f"wamid.KW.{action}", keyword))
    _process_all()
    with tenant_context(tenant_a.organization):
        contact = Contact.objects.get()
        record = contact.consent_records.get()
        assert record.action == action
        assert record.source == "keyword"
        assert f"wamid.KW.{action}" in record.evidence
        assert contact.consent == (
            Contact.Consent.OPTED_OUT if action == ConsentRecord.Action.OPT_OUT else Contact.Consent.OPTED_IN
        )
        confirmation = OutboxMessage.objects.get()
        assert confirmation.payload["text"]["body"].startswith(confirmation_start)
        assert confirmation.to_wa_id == contact.wa_id


def test_a_late_stop_is_recorded_without_a_confirmation_once_the_window_has_closed(tenant_a: TenantSetup) -> None:
    """An orphan replayed days later (its number added since): the opt-out and the message are
    recorded; WhatsApp would refuse a free-form confirmation, so none is queued."""
    import time

    three_days_ago = int(time.time()) - 3 * 24 * 3600
    wp.post(wp.text(_number(tenant_a), "wamid.LATESTOP", "STOP", timestamp=three_days_ago))
    event = WebhookEvent.objects.get(dedup_key="m:wamid.LATESTOP")
    assert webhook_event_process(event_id=event.pk) == WebhookEvent.State.PROCESSED
    with tenant_context(tenant_a.organization):
        contact = Contact.objects.get()
        assert contact.consent == Contact.Consent.OPTED_OUT
        assert contact.consent_records.get().action == ConsentRecord.Action.OPT_OUT
        assert Message.objects.filter(wamid="wamid.LATESTOP").exists()
        assert not OutboxMessage.objects.exists()
        assert not Message.objects.filter(direction=Message.Direction.OUTBOUND).exists()


def test_a_sentence_containing_stop_is_not_a_keyword(tenant_a: TenantSetup) -> None:
    wp.post(wp.text(_number(tenant_a), "wamid.NOKW", "please stop the delivery, I moved"))
    _process_all()
    with tenant_context(tenant_a.organization):
        assert not ConsentRecord.objects.exists()
        assert not OutboxMessage.objects.exists()


def test_a_resolved_conversation_reopens_on_a_new_message(tenant_a: TenantSetup) -> None:
    wp.post(wp.text(_number(tenant_a), "wamid.R1", "first"))
    _process_all()
    with tenant_context(tenant_a.organization):
        Conversation.objects.update(status=Conversation.Status.RESOLVED)
    wp.post(wp.text(_number(tenant_a), "wamid.R2", "again"))
    _process_all()
    with tenant_context(tenant_a.organization):
        conversation = Conversation.objects.get()
        assert conversation.status == Conversation.Status.BOT
        assert conversation.messages.count() == 2


def _reaction(tenant: TenantSetup, wamid: str, target: str, emoji: str | None, timestamp: int) -> None:
    body: dict[str, Any] = {"message_id": target}
    if emoji is not None:
        body["emoji"] = emoji
    wp.post(wp.message(_number(tenant), wamid, {"type": "reaction", "reaction": body}, timestamp=timestamp))
    _process_all()


def test_a_reaction_is_attached_to_its_message_and_changes_nothing_else(tenant_a: TenantSetup) -> None:
    import time

    from apps.conversations.services import message_send
    from apps.whatsapp import messages as wa

    start = int(time.time()) - 600
    wp.post(wp.text(_number(tenant_a), "wamid.RXIN", "Where is my order?", timestamp=start))
    _process_all()
    with tenant_context(tenant_a.organization):
        conversation = Conversation.objects.get()
        reply = message_send(
            conversation=conversation, outgoing=wa.text("On its way"), author_kind="bot", idempotency_key="rx"
        )
        assert reply.outbox_id is not None
        OutboxMessage.objects.filter(pk=reply.outbox_id).update(wamid="wamid.RXOUT")
        Conversation.objects.update(status=Conversation.Status.RESOLVED, unread_count=0)
        before = Conversation.objects.get()
        window = ServiceWindow.objects.get().expires_at

    _reaction(tenant_a, "wamid.RX1", "wamid.RXOUT", "👍", start + 60)
    with tenant_context(tenant_a.organization):
        after = Conversation.objects.get()
        assert after.status == Conversation.Status.RESOLVED
        assert after.unread_count == 0
        assert after.last_message_preview == before.last_message_preview
        assert after.last_message_at == before.last_message_at
        assert ServiceWindow.objects.get().expires_at == window
        assert Message.objects.count() == 2  # no message of its own
        assert Message.objects.get(pk=reply.pk).customer_reaction == "👍"
        client = tenant_a.client()
        client.force_login(admin_user(tenant_a))
        thread = client.get(f"/api/v1/conversations/{after.pk}/").json()["messages"]
        assert [m["reaction"] for m in thread] == ["", "👍"]

    _reaction(tenant_a, "wamid.RX2", "wamid.RXOUT", None, start + 120)  # removed
    with tenant_context(tenant_a.organization):
        assert Message.objects.get(pk=reply.pk).customer_reaction == ""
    _reaction(tenant_a, "wamid.RX0", "wamid.RXOUT", "😡", start + 30)  # an older one, delivered late
    with tenant_context(tenant_a.organization):
        assert Message.objects.get(pk=reply.pk).customer_reaction == ""
        assert Conversation.objects.get().status == Conversation.Status.RESOLVED
    assert WebhookEvent.objects.get(dedup_key="m:wamid.RX0").state == WebhookEvent.State.PROCESSED


def test_a_reaction_to_a_message_we_do_not_know_starts_nothing(tenant_a: TenantSetup) -> None:
    import time

    _reaction(tenant_a, "wamid.RXLOST", "wamid.SENTELSEWHERE", "🙏", int(time.time()))
    assert WebhookEvent.objects.get(dedup_key="m:wamid.RXLOST").state == WebhookEvent.State.PROCESSED
    with tenant_context(tenant_a.organization):
        assert not Conversation.objects.exists()
        assert not Message.objects.exists()


def test_the_public_schema_holds_no_tenant_rows(tenant_a: TenantSetup) -> None:
    wp.post(wp.text(_number(tenant_a), "wamid.PUB", "hello"))
    _process_all()
    with schema_context("public"), connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('public.conversations_message')")
        assert cursor.fetchone()[0] is None


# --- retention ------------------------------------------------------------------------------


def test_handled_events_are_pruned_after_the_retention_and_a_late_copy_is_still_refused(
    tenant_a: TenantSetup, settings: Any
) -> None:
    """Processed, ignored and orphan events go after the retention; pending and failed stay."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.whatsapp.tasks import webhook_events_prune_task

    settings.WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS = 30
    for wamid in ("wamid.OLD", "wamid.RECENT", "wamid.FAILEDOLD", "wamid.PENDINGOLD"):
        assert wp.post(wp.text(_number(tenant_a), wamid, "Habari")).json()["new"] == 1
    assert wp.post(wp.text("999000111", "wamid.ORPHANOLD", "hello")).status_code == 200
    for wamid in ("wamid.OLD", "wamid.RECENT"):
        webhook_event_process(event_id=WebhookEvent.objects.get(dedup_key=f"m:{wamid}").pk)
    WebhookEvent.objects.filter(dedup_key="m:wamid.FAILEDOLD").update(state=WebhookEvent.State.FAILED)
    old = timezone.now() - timedelta(days=31)
    WebhookEvent.objects.filter(
        dedup_key__in=["m:wamid.OLD", "m:wamid.FAILEDOLD", "m:wamid.PENDINGOLD", "m:wamid.ORPHANOLD"]
    ).update(received_at=old)

    assert webhook_events_prune_task.run() == 2  # the processed one and the orphan
    left = set(WebhookEvent.objects.filter(dedup_key__startswith="m:wamid.").values_list("dedup_key", flat=True))
    assert {"m:wamid.RECENT", "m:wamid.FAILEDOLD", "m:wamid.PENDINGOLD"} <= left
    assert not {"m:wamid.OLD", "m:wamid.ORPHANOLD"} & left
    # The message itself stays in the tenant's tables, and Meta's late copy is still refused there.
    with tenant_context(tenant_a.organization):
        assert Message.objects.filter(wamid="wamid.OLD").count() == 1
    assert wp.post(wp.text(_number(tenant_a), "wamid.OLD", "Habari")).json()["new"] == 1
    _process_all()
    with tenant_context(tenant_a.organization):
        assert Message.objects.filter(wamid="wamid.OLD").count() == 1

    # Never before Meta's 7 days of redelivery are over, whatever the setting says: the
    # 3-day-old event stays; the old pending one, processed just now, goes.
    settings.WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS = 1
    WebhookEvent.objects.filter(dedup_key="m:wamid.RECENT").update(received_at=timezone.now() - timedelta(days=3))
    assert WebhookEvent.objects.get(dedup_key="m:wamid.PENDINGOLD").state == WebhookEvent.State.PROCESSED
    assert webhook_events_prune_task.run() == 1
    assert WebhookEvent.objects.filter(dedup_key="m:wamid.RECENT").exists()
    assert not WebhookEvent.objects.filter(dedup_key="m:wamid.PENDINGOLD").exists()


def test_a_lone_surrogate_is_stored_as_a_replacement_character(tenant_a: TenantSetup) -> None:
    # JSON may escape half of an emoji ("\ud83d"); PostgreSQL and the analysers take no such text.
    assert wp.post(wp.text(_number(tenant_a), "wamid.HALF", "Hello \ud83d, where is my order?")).status_code == 200
    event = WebhookEvent.objects.get(dedup_key="m:wamid.HALF")
    assert webhook_event_process(event_id=event.pk) == WebhookEvent.State.PROCESSED
    with tenant_context(tenant_a.organization):
        assert Message.objects.get().text == "Hello \ufffd, where is my order?"
