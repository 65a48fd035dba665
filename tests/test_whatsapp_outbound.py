"""The outbound path: pre-send limits, the window, the outbox, retries, statuses, the governor, media."""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.core.tenancy import tenant_context
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp import governor
from apps.whatsapp import messages as wa
from apps.whatsapp.media import media_download, media_register
from apps.whatsapp.models import Media, OutboxMessage
from apps.whatsapp.outbox import (
    IdempotencyKeyReused,
    WindowClosed,
    outbox_deliver,
    outbox_enqueue,
    outbox_status_apply,
)
from apps.whatsapp.payloads import MediaRef, StatusUpdate, WhatsAppError
from tests.conftest import TenantSetup
from tests.fakes.graph_api import FakeGraphApi, Reply

pytestmark = pytest.mark.django_db

OPEN = timezone.now() + timedelta(hours=3)


def _enqueue(tenant: TenantSetup, key: str, message: wa.Outgoing | None = None, **kwargs: object) -> OutboxMessage:
    return outbox_enqueue(
        account=tenant.whatsapp,
        to_wa_id="254711000001",
        message=message or wa.text("Your order ships today."),
        idempotency_key=key,
        window_expires_at=kwargs.pop("window", OPEN),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


# --- limits -------------------------------------------------------------------------------


def test_limits_are_checked_before_sending() -> None:
    with pytest.raises(wa.MessageInvalid) as too_many:
        wa.buttons("Pick", [wa.Button(str(i), f"Option {i}") for i in range(4)])
    assert too_many.value.extra == {"field": "buttons", "count": 4, "limit": 3}
    with pytest.raises(wa.MessageInvalid, match=r"buttons\[0\]\.title is 21 characters; WhatsApp allows at most 20"):
        wa.buttons("Pick", [wa.Button("a", "x" * 21)])
    with pytest.raises(wa.MessageInvalid, match="1 to 10 rows"):
        wa.list_message("Pick", "Menu", [wa.Section("All", [wa.Row(str(i), f"Row {i}") for i in range(11)])])
    with pytest.raises(wa.MessageInvalid, match=r"rows\[0\]\.title is 25"):
        wa.list_message("Pick", "Menu", [wa.Section("", [wa.Row("r", "y" * 25)])])
    with pytest.raises(wa.MessageInvalid, match=r"description is 73"):
        wa.list_message("Pick", "Menu", [wa.Section("", [wa.Row("r", "ok", "d" * 73)])])
    with pytest.raises(wa.MessageInvalid, match="body is 1025"):
        wa.buttons("b" * 1025, [wa.Button("a", "A")])
    with pytest.raises(wa.MessageInvalid, match="text is 4097"):
        wa.text("t" * 4097)
    with pytest.raises(wa.MessageInvalid, match="takes 2 body variables, not 1"):
        wa.template("order_update", "en", body_params=["Amina"], expected_body_params=2)
    assert wa.template_variable_count("Hi {{1}}, order {{2}} ships {{ 2 }}") == 2
    ok = wa.list_message("Choose", "Menu", [wa.Section("", [wa.Row("r1", "Track order", "Where is it?")])])
    assert ok.payload["interactive"]["action"]["sections"][0]["rows"][0] == {
        "id": "r1",
        "title": "Track order",
        "description": "Where is it?",
    }


# --- window and idempotency ---------------------------------------------------------------


def test_free_form_outside_the_window_is_refused_up_front(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        closed = timezone.now() - timedelta(minutes=1)
        with pytest.raises(WindowClosed) as refused:
            _enqueue(tenant_a, "w1", window=closed)
        assert "template" in refused.value.message
        assert not OutboxMessage.objects.exists()
        template = _enqueue(tenant_a, "w2", wa.template("order_update", "en", body_params=["A1"]), window=closed)
        assert template.kind == "template"


def test_the_same_idempotency_key_never_makes_two_sends(tenant_a: TenantSetup, graph_api: FakeGraphApi) -> None:
    with tenant_context(tenant_a.organization):
        first = _enqueue(tenant_a, "order-42-shipped")
        second = _enqueue(tenant_a, "order-42-shipped")
        assert first.pk == second.pk
        assert outbox_deliver(outbox_id=first.pk).state == "sent"
        assert outbox_deliver(outbox_id=first.pk).state == "skipped"
    assert len(graph_api.sent_messages()) == 1
    sent = graph_api.sent_messages()[0]
    assert sent.path == f"/v21.0/{tenant_a.whatsapp.phone_number_id}/messages"
    assert sent.headers["Authorization"] == "Bearer token-alpha"
    assert sent.body == {
        "messaging_product": "whatsapp",
        "to": "254711000001",
        "type": "text",
        "text": {"body": "Your order ships today.", "preview_url": False},
    }


def test_a_key_reused_for_another_recipient_is_refused_not_dropped(tenant_a: TenantSetup) -> None:
    """Returning the first row would report the second message as queued when it never is."""
    with tenant_context(tenant_a.organization):
        _enqueue(tenant_a, "reused-key")
        with pytest.raises(IdempotencyKeyReused) as refused:
            outbox_enqueue(
                account=tenant_a.whatsapp,
                to_wa_id="254799999999",
                message=wa.text("Someone else's message"),
                idempotency_key="reused-key",
                window_expires_at=OPEN,
            )
        assert refused.value.code == "idempotency_key_reused"
        assert OutboxMessage.objects.count() == 1


# --- retries ------------------------------------------------------------------------------


def test_transient_errors_back_off_then_send_exactly_once(tenant_a: TenantSetup, graph_api: FakeGraphApi) -> None:
    graph_api.script(
        "messages",
        Reply(500, {"error": {"message": "Internal error", "code": 1}}),
        Reply(429, {"error": {"message": "Rate limit hit", "code": 130429}}),
        Reply(503),
    )
    with tenant_context(tenant_a.organization):
        row = _enqueue(tenant_a, "retry-1")
        delays = []
        for _ in range(3):
            outcome = outbox_deliver(outbox_id=row.pk)
            assert outcome.state == "retry"
            assert outcome.retry_in is not None
            delays.append(outcome.retry_in)
        assert outbox_deliver(outbox_id=row.pk).state == "sent"
        row.refresh_from_db()
        assert row.status == OutboxMessage.Status.SENT
        assert row.attempts == 4
        assert row.wamid is not None and row.wamid.startswith("wamid.fake.")
    # exponential: 2s, 4s, 8s with +-50% jitter
    assert 1.0 <= delays[0] <= 3.0 and 2.0 <= delays[1] <= 6.0 and 4.0 <= delays[2] <= 12.0
    assert len(graph_api.sent_messages()) == 4
    assert sum(1 for request in graph_api.sent_messages() if request.body["to"] == "254711000001") == 4


def test_a_timeout_is_retried(tenant_a: TenantSetup, graph_api: FakeGraphApi, settings: object) -> None:
    settings.WHATSAPP_GRAPH_TIMEOUT = 0.3  # type: ignore[attr-defined]
    graph_api.script("messages", Reply(200, {"messages": [{"id": "late"}]}, delay=1.0))
    with tenant_context(tenant_a.organization):
        row = _enqueue(tenant_a, "timeout-1")
        outcome = outbox_deliver(outbox_id=row.pk)
        assert outcome.state == "retry"
        row.refresh_from_db()
        assert "Timeout" in row.error_title


def test_a_permanent_error_fails_with_metas_code_and_title(tenant_a: TenantSetup, graph_api: FakeGraphApi) -> None:
    graph_api.script(
        "messages",
        Reply(400, {"error": {"message": "Re-engagement message", "code": 131047, "error_data": {"details": "24h"}}}),
    )
    with tenant_context(tenant_a.organization):
        row = _enqueue(tenant_a, "perm-1")
        assert outbox_deliver(outbox_id=row.pk).state == "failed"
        row.refresh_from_db()
        assert row.status == OutboxMessage.Status.FAILED
        assert row.error_code == 131047
        assert "Re-engagement message" in row.error_title
        assert outbox_deliver(outbox_id=row.pk).state == "skipped"
    assert len(graph_api.sent_messages()) == 1


def test_the_attempt_limit_ends_retries(tenant_a: TenantSetup, graph_api: FakeGraphApi, settings: object) -> None:
    settings.WHATSAPP_SEND_MAX_ATTEMPTS = 2  # type: ignore[attr-defined]
    graph_api.script("messages", Reply(500), Reply(500))
    with tenant_context(tenant_a.organization):
        row = _enqueue(tenant_a, "limit-1")
        assert outbox_deliver(outbox_id=row.pk).state == "retry"
        assert outbox_deliver(outbox_id=row.pk).state == "failed"


# --- statuses -----------------------------------------------------------------------------


def _status(wamid: str, state: str, at: int, errors: list[WhatsAppError] | None = None) -> StatusUpdate:
    return StatusUpdate(wamid=wamid, status=state, timestamp=datetime.fromtimestamp(at, tz=UTC), errors=errors or [])


def test_statuses_only_move_forward(tenant_a: TenantSetup, graph_api: FakeGraphApi) -> None:
    with tenant_context(tenant_a.organization):
        row = _enqueue(tenant_a, "status-1")
        outbox_deliver(outbox_id=row.pk)
        row.refresh_from_db()
        assert row.wamid is not None
        assert outbox_status_apply(status=_status(row.wamid, "read", 1_800_000_010)) is True
        assert outbox_status_apply(status=_status(row.wamid, "delivered", 1_800_000_005)) is False
        assert outbox_status_apply(status=_status(row.wamid, "sent", 1_800_000_001)) is False
        assert outbox_status_apply(status=_status(row.wamid, "failed", 1_800_000_020)) is False
        row.refresh_from_db()
        assert row.delivery_status == "read"
        assert row.read_at is not None and row.delivered_at is not None


def test_a_failed_status_records_the_error(tenant_a: TenantSetup, graph_api: FakeGraphApi) -> None:
    with tenant_context(tenant_a.organization):
        row = _enqueue(tenant_a, "status-2")
        outbox_deliver(outbox_id=row.pk)
        row.refresh_from_db()
        assert row.wamid is not None
        error = WhatsAppError(code=131026, title="Message undeliverable", details="Receiver is incapable")
        assert outbox_status_apply(status=_status(row.wamid, "failed", 1_800_000_001, [error])) is True
        row.refresh_from_db()
        assert (row.delivery_status, row.error_code) == ("failed", 131026)
        assert "Receiver is incapable" in row.error_title


def test_statuses_through_the_webhook_update_the_outbox(tenant_a: TenantSetup, graph_api: FakeGraphApi) -> None:
    from apps.tenants.models import WebhookEvent
    from apps.whatsapp.processing import webhook_event_process
    from tests import whatsapp_payloads as wp

    with tenant_context(tenant_a.organization):
        row = _enqueue(tenant_a, "status-3")
        outbox_deliver(outbox_id=row.pk)
        row.refresh_from_db()
    number = tenant_a.whatsapp.phone_number_id
    wp.post(wp.status(number, str(row.wamid), "delivered", timestamp=1_800_000_005))
    wp.post(wp.status(number, str(row.wamid), "read", timestamp=1_800_000_009))
    wp.post(wp.status(number, str(row.wamid), "read", timestamp=1_800_000_009))  # a duplicate
    assert WebhookEvent.objects.filter(kind="status").count() == 2
    for event in WebhookEvent.objects.filter(kind="status").order_by("-pk"):  # newest first: out of order
        assert webhook_event_process(event_id=event.pk) == "processed"
    with tenant_context(tenant_a.organization):
        row.refresh_from_db()
        assert row.delivery_status == "read"


# --- the governor -------------------------------------------------------------------------


def _take_slots(phone_number_id: str, rate: int, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    taken = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if governor.send_slot_take(phone_number_id=phone_number_id, rate_per_second=rate, bulk=False) == 0:
            taken += 1
        else:
            time.sleep(0.002)
    out.put(taken)


def test_the_governor_holds_the_rate_across_two_processes() -> None:
    rate, seconds = 100, 1.5
    number = f"governor-{time.monotonic_ns()}"
    out: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()  # type: ignore[type-arg]
    workers = [
        multiprocessing.get_context("fork").Process(target=_take_slots, args=(number, rate, seconds, out))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    counts = [out.get(timeout=5), out.get(timeout=5)]
    total = sum(counts)
    # One second of burst plus the refill: rate * (1 + seconds), give or take timing.
    assert rate * seconds <= total <= rate * (1 + seconds) * 1.1, counts
    assert min(counts) > 0.2 * total  # both processes got a share


def test_bulk_sends_leave_a_reserve_for_live_replies(settings: object) -> None:
    settings.WHATSAPP_LIVE_RESERVE = 0.2  # type: ignore[attr-defined]
    number = f"reserve-{time.monotonic_ns()}"
    bulk = 0
    while governor.send_slot_take(phone_number_id=number, rate_per_second=10, bulk=True) == 0:
        bulk += 1
    assert bulk == 8  # 10 tokens, 2 kept back
    assert governor.send_slot_take(phone_number_id=number, rate_per_second=10, bulk=False) == 0


# --- media --------------------------------------------------------------------------------


def test_media_is_downloaded_with_the_token_within_limits(tenant_a: TenantSetup, graph_api: FakeGraphApi) -> None:
    graph_api.media_files["IMG1"] = (b"\x89PNG fake image bytes", "image/png")
    graph_api.media_files["BIG1"] = (b"x" * 600_000, "image/webp")
    with tenant_context(tenant_a.organization):
        image = media_register(account=tenant_a.whatsapp, kind="image", ref=MediaRef(media_id="IMG1"))
        stored = media_download(media_id=image.pk)
        assert stored.status == Media.Status.READY
        assert stored.file.read() == b"\x89PNG fake image bytes"
        assert stored.file.name.endswith(".png")
        assert stored.file.name.startswith(f"tenants/{tenant_a.schema}/whatsapp/media/")
        sticker = media_register(account=tenant_a.whatsapp, kind="sticker", ref=MediaRef(media_id="BIG1"))
        assert media_download(media_id=sticker.pk).status == Media.Status.TOO_LARGE
        missing = media_register(account=tenant_a.whatsapp, kind="image", ref=MediaRef(media_id="GONE"))
        assert media_download(media_id=missing.pk).status == Media.Status.FAILED
    # Only this test's files (info for all three, the one file fetched): the session's Celery
    # worker may still be finishing an earlier test's sends (another tenant's token) here.
    ours = [r for r in graph_api.requests if r.path.rsplit("/", 1)[-1].split("?")[0] in {"IMG1", "BIG1", "GONE"}]
    assert len(ours) == 4 and all(r.headers["Authorization"] == "Bearer token-alpha" for r in ours)


def test_sandbox_numbers_record_instead_of_calling_meta(tenant_b: TenantSetup, graph_api: FakeGraphApi) -> None:
    WhatsAppAccount.objects.filter(pk=tenant_b.whatsapp.pk).update(transport=WhatsAppAccount.Transport.SANDBOX)
    tenant_b.whatsapp.refresh_from_db()
    with tenant_context(tenant_b.organization):
        row = _enqueue(tenant_b, "sandbox-1")
        assert outbox_deliver(outbox_id=row.pk).state == "sent"
        row.refresh_from_db()
        assert row.wamid is not None and row.wamid.startswith("wamid.sandbox.")
    assert graph_api.sent_messages() == []
