"""End to end through the real ASGI app, Redis and a Celery worker process."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.contacts.models import Contact
from apps.conversations.models import Message
from apps.core.tenancy import tenant_context, use_public_schema
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from apps.whatsapp import messages as wa
from apps.whatsapp.message_templates import message_template_list_sendable
from apps.whatsapp.models import MessageTemplate, OutboxMessage
from apps.whatsapp.outbox import outbox_deliver
from apps.whatsapp.processing import webhook_events_stuck_requeue
from apps.whatsapp.webhooks import routes_forget, sign
from imaradesk.asgi import application
from tests import whatsapp_payloads as wp
from tests.conftest import TenantSetup, tenant_conversations_wipe
from tests.fakes.graph_api import FakeGraphApi

pytestmark = pytest.mark.usefixtures("committed_db")


@pytest.fixture
def clean_tenant_a(tenant_a: TenantSetup) -> Iterator[TenantSetup]:
    yield tenant_a
    use_public_schema()
    WebhookEvent.objects.filter(tenant=tenant_a.organization).delete()
    tenant_conversations_wipe(tenant_a)
    WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(transport=WhatsAppAccount.Transport.CLOUD)


async def _asgi(method: str, url: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        return await client.request(method, url, **kwargs)  # type: ignore[arg-type]


def _deliver(payload: dict[str, Any]) -> httpx.Response:
    """POST a webhook delivery signed with the platform's app secret, through the ASGI app."""
    body = json.dumps(payload).encode()
    headers = {"X-Hub-Signature-256": sign(body, settings.WHATSAPP_APP_SECRET)}
    return asyncio.run(_asgi("POST", "/webhooks/whatsapp/", content=body, headers=headers))


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_webhook_to_worker_to_reply_to_statuses(
    celery_worker: str, clean_tenant_a: TenantSetup, graph_api: FakeGraphApi
) -> None:
    tenant = clean_tenant_a
    WhatsAppAccount.objects.filter(pk=tenant.whatsapp.pk).update(transport=WhatsAppAccount.Transport.SANDBOX)
    response = _deliver(wp.text(tenant.whatsapp.phone_number_id, "wamid.E2E1", "STOP"))
    assert response.status_code == 200
    assert response.json() == {"received": 1, "new": 1}

    def replied_and_read() -> bool:
        with tenant_context(tenant.organization):
            row = OutboxMessage.objects.filter(idempotency_key="consent:wamid.E2E1").first()
            return row is not None and row.delivery_status == "read"

    # The worker records the message, sends the opt-out confirmation (sandbox), and the
    # sandbox's signed status webhooks come back through the same ingest.
    _wait_for(replied_and_read)

    def analysed() -> bool:
        with tenant_context(tenant.organization):
            return Message.objects.filter(wamid="wamid.E2E1", analysed_at__isnull=False).exists()

    _wait_for(analysed, timeout=60)  # the worker loads the offline models on its first message
    with tenant_context(tenant.organization):
        assert Message.objects.get(wamid="wamid.E2E1").analysis["provider"] == "local"
        assert Contact.objects.get().consent == Contact.Consent.OPTED_OUT
    assert WebhookEvent.objects.get(dedup_key="m:wamid.E2E1").state == WebhookEvent.State.PROCESSED
    assert graph_api.sent_messages() == []  # sandbox: Meta is never called


def test_the_lean_asgi_path_verifies_and_limits(clean_tenant_a: TenantSetup) -> None:
    ok = asyncio.run(
        _asgi("GET", "/webhooks/whatsapp/", params={"hub.mode": "subscribe", "hub.challenge": "42",
              "hub.verify_token": settings.WHATSAPP_VERIFY_TOKEN})
    )  # fmt: skip
    assert (ok.status_code, ok.text) == (200, "42")
    bad = asyncio.run(_asgi("GET", "/webhooks/whatsapp/", params={"hub.mode": "subscribe", "hub.verify_token": "x"}))
    assert bad.status_code == 403
    huge = b"{" + b" " * (settings.WHATSAPP_WEBHOOK_MAX_BYTES + 1) + b"}"
    too_big = asyncio.run(_asgi("POST", "/webhooks/whatsapp/", content=huge))
    assert too_big.status_code == 413
    unsigned = asyncio.run(_asgi("POST", "/webhooks/whatsapp/", content=b"{}"))
    assert unsigned.status_code == 401
    assert asyncio.run(_asgi("PUT", "/webhooks/whatsapp/")).status_code == 405


def test_a_template_meta_pauses_stops_being_offered_once_the_worker_has_run(
    celery_worker: str, clean_tenant_a: TenantSetup
) -> None:
    """Meta's message_template_status_update names no number: the account ID routes it."""
    tenant = clean_tenant_a
    WhatsAppAccount.objects.filter(pk=tenant.whatsapp.pk).update(waba_id="WABA-E2E")
    routes_forget()
    with tenant_context(tenant.organization):
        template = MessageTemplate.objects.create(
            account_id=tenant.whatsapp.pk, template_id="7001", name="order_ready", language="en",
            category="UTILITY", status="APPROVED", body_text="Hello {{1}}", variable_count=1,
            synced_at=timezone.now() - timedelta(hours=1),
        )  # fmt: skip
    try:
        payload = wp.template_status("WABA-E2E", "PAUSED", template_id=7001, name="order_ready", language="en")
        response = _deliver(payload)
        assert response.status_code == 200
        assert response.json() == {"received": 1, "new": 1}

        def paused() -> bool:
            with tenant_context(tenant.organization):
                return not message_template_list_sendable(account=tenant.whatsapp).exists()

        _wait_for(paused)
        event = WebhookEvent.objects.get(tenant=tenant.organization, kind=WebhookEvent.Kind.ACCOUNT)
        assert event.state == WebhookEvent.State.PROCESSED
        with tenant_context(tenant.organization):
            template.refresh_from_db()
            assert template.status == MessageTemplate.Status.PAUSED
    finally:
        with tenant_context(tenant.organization):
            MessageTemplate.objects.filter(pk=template.pk).delete()
        WhatsAppAccount.objects.filter(pk=tenant.whatsapp.pk).update(waba_id="")
        routes_forget()


def test_the_sweeper_requeues_events_whose_task_was_lost(
    celery_worker: str, clean_tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.whatsapp import webhooks

    tenant = clean_tenant_a
    monkeypatch.setattr(webhooks, "_enqueue", lambda ids: None)  # the Redis push "failed"
    wp.post(wp.text(tenant.whatsapp.phone_number_id, "wamid.LOST", "hello?"))
    event = WebhookEvent.objects.get(dedup_key="m:wamid.LOST")
    assert event.state == WebhookEvent.State.PENDING
    assert webhook_events_stuck_requeue() == 0  # not stuck yet
    WebhookEvent.objects.filter(pk=event.pk).update(enqueued_at=timezone.now() - timedelta(minutes=5))
    assert webhook_events_stuck_requeue() == 1
    _wait_for(lambda: WebhookEvent.objects.get(pk=event.pk).state == WebhookEvent.State.PROCESSED)
    with tenant_context(tenant.organization):
        assert Message.objects.filter(wamid="wamid.LOST").exists()


def test_processing_pushes_live_events_to_the_right_tenant(clean_tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    from channels.layers import get_channel_layer

    from apps.core.realtime import EVENTS_TOPIC, tenant_group
    from apps.whatsapp.processing import webhook_event_process

    layer = get_channel_layer()
    assert layer is not None
    # A channel lives in the event loop that made it (the pub/sub layer subscribes per loop),
    # as a server process's sockets do: one loop of our own for the whole test.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_loop(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(10)

    async def subscribe(schema: str) -> str:
        channel = str(await layer.new_channel())
        await layer.group_add(tenant_group(schema, EVENTS_TOPIC), channel)
        return channel

    async def receive(channel: str) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(layer.receive(channel), timeout=1.0)
        except TimeoutError:
            return None

    try:
        channels = {tenant.schema: on_loop(subscribe(tenant.schema)) for tenant in (clean_tenant_a, tenant_b)}
        # The event is published from inside the tenant's schema but sent after the outer
        # transaction commits, when the worker is back in the public schema.
        wp.post(wp.text(clean_tenant_a.whatsapp.phone_number_id, "wamid.LIVE", "live?"))
        event = WebhookEvent.objects.get(dedup_key="m:wamid.LIVE")
        # A worker left running by an earlier test may take the event first: either way it is
        # processed once, and the event comes through Redis to this process's channels.
        assert webhook_event_process(event_id=event.pk) in (WebhookEvent.State.PROCESSED, "locked-or-missing")
        _wait_for(lambda: WebhookEvent.objects.get(pk=event.pk).state == WebhookEvent.State.PROCESSED)

        got = on_loop(receive(channels[clean_tenant_a.schema]))
        assert got is not None and got["event"] == "message.created"
        assert on_loop(receive(channels[tenant_b.schema])) is None
        # Only later events about the same conversation may follow (its analysis, the bot's
        # answer or a ticket opened for it, when a worker left running by an earlier test picks
        # them up).
        conversation = got["data"]["conversation"]
        for _ in range(20):
            later = on_loop(receive(channels[clean_tenant_a.schema]))
            if later is None:
                break
            data = later["data"]
            assert data.get("conversation") == conversation or conversation in data.get("conversations", []), later
        else:
            raise AssertionError("events kept coming")
        assert on_loop(receive(channels[tenant_b.schema])) is None
    finally:
        on_loop(layer.flush())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


class _BlockingClient:
    """A Graph API client whose send waits until released: a slow request in flight."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def send(self, payload: dict[str, object]) -> str:
        self.started.set()
        assert self.release.wait(10)
        return "wamid.SLOW"


def test_a_slow_send_does_not_hold_up_other_sends_on_the_same_number(
    clean_tenant_a: TenantSetup, graph_api: FakeGraphApi
) -> None:
    """Row locks cover the outbox row only: the number (a joined table) stays unlocked."""
    tenant = clean_tenant_a
    with tenant_context(tenant.organization):
        # Rows straight into the table: no send task is queued, the test delivers them itself.
        slow, fast = (
            OutboxMessage.objects.create(
                account=tenant.whatsapp,
                to_wa_id="254711000009",
                kind="text",
                payload={"to": "254711000009", **wa.text(f"message {key}").payload},
                idempotency_key=f"lock-{key}",
                next_attempt_at=timezone.now(),
            )
            for key in ("slow", "fast")
        )
    blocking = _BlockingClient()
    outcome: list[str] = []

    def deliver_slowly() -> None:
        with tenant_context(tenant.organization):
            outcome.append(outbox_deliver(outbox_id=slow.pk, client=blocking).state)
        connection.close()

    worker = threading.Thread(target=deliver_slowly)
    worker.start()
    try:
        assert blocking.started.wait(10)
        with tenant_context(tenant.organization):
            assert outbox_deliver(outbox_id=fast.pk).state == "sent"
            assert OutboxMessage.objects.get(pk=fast.pk).status == "sent"
    finally:
        blocking.release.set()
        worker.join(10)
    assert outcome == ["sent"]
    assert [m.body["text"]["body"] for m in graph_api.sent_messages()] == ["message fast"]
