"""The batch sender: claims under a lease, priority, concurrent drains, recovery, errors in a batch."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.tenancy import current_schema, tenant_context
from apps.whatsapp import governor
from apps.whatsapp import messages as wa
from apps.whatsapp.client import GraphApiError, GraphSendPool
from apps.whatsapp.models import OutboxMessage
from apps.whatsapp.outbox import (
    outbox_deliver,
    outbox_drain,
    outbox_drain_cycle,
    outbox_drain_release,
    outbox_enqueue,
    outbox_stuck_requeue,
    scheduling,
    sending,
)
from apps.whatsapp.tasks import outbox_drain_task
from tests.conftest import TenantSetup, outbox_drain_flags_clear
from tests.fakes.graph_api import FakeGraphApi

OPEN = timezone.now() + timedelta(hours=3)


def _row(
    tenant: TenantSetup, key: str, priority: int = OutboxMessage.Priority.LIVE, to: str = "254711000001"
) -> OutboxMessage:
    """A row straight into the table: no drain is queued, the test sends it itself."""
    return OutboxMessage.objects.create(
        account=tenant.whatsapp,
        to_wa_id=to,
        kind="text",
        payload={"to": to, **wa.text(key).payload},
        idempotency_key=key,
        priority=priority,
        next_attempt_at=timezone.now(),
    )


class RecordingSender:
    """Answers by the message's text: "retry…" 503, "limit…" 130429, "perm…" 131047, else a wamid."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def send(self, payload: dict[str, Any]) -> str:
        text = str(payload["text"]["body"])
        time.sleep(self.delay)
        with self._lock:
            self.sent.append(text)
        if text.startswith("retry"):
            raise GraphApiError(status=503, code=None, title="Service Unavailable")
        if text.startswith("limit"):
            raise GraphApiError(status=400, code=130429, title="Rate limit hit")
        if text.startswith("perm"):
            raise GraphApiError(status=400, code=131047, title="Re-engagement message", details="24h")
        return f"wamid.test.{text}"


@pytest.fixture
def drains(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Drain tasks asked for, instead of queued (no worker runs in these tests)."""
    asked: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> None:
        asked.append(kwargs)

    monkeypatch.setattr(outbox_drain_task, "apply_async", record)
    yield asked
    outbox_drain_flags_clear()  # the flags of drains that were never queued


# --- claims and priority ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_drain_sends_live_replies_before_bulk_sends(tenant_a: TenantSetup, settings: Any) -> None:
    settings.WHATSAPP_SEND_BATCH = 2
    sender = RecordingSender()
    with tenant_context(tenant_a.organization):
        # Five customers (one customer's own messages keep their order whatever their priority).
        for i in range(3):
            _row(tenant_a, f"bulk-{i}", OutboxMessage.Priority.BULK, to=f"25471100010{i}")
        for i in range(2):
            _row(tenant_a, f"live-{i}", to=f"25471100020{i}")
        report = outbox_drain(account_id=tenant_a.whatsapp.pk, sender=sender)
        assert (report.sent, report.failed, report.retried, report.lost) == (5, 0, 0, 0)
        assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
        assert OutboxMessage.objects.get(idempotency_key="live-0").wamid == "wamid.test.live-0"
    # Batches of two: both live replies went out in the first one, though queued last.
    assert set(sender.sent[:2]) == {"live-0", "live-1"}
    assert sorted(sender.sent[2:]) == ["bulk-0", "bulk-1", "bulk-2"]


@pytest.mark.django_db
def test_one_customers_messages_go_out_one_at_a_time_in_order(tenant_a: TenantSetup) -> None:
    """A batch's sends run concurrently: a customer's second message must not race their first."""
    sender = RecordingSender(delay=0.02)
    with tenant_context(tenant_a.organization):
        rows = [_row(tenant_a, f"step-{i}") for i in range(4)]
        other = _row(tenant_a, "other", to="254711000002")
        claim = sending._claim(sending._due(tenant_a.whatsapp.pk, timezone.now()), now=timezone.now())
        # Only a recipient's oldest unsent row is due: one per recipient in a claim, and while it
        # is in flight (or waits for a retry), the recipient's next rows wait behind it.
        assert sorted(r.pk for r in claim.rows) == sorted([rows[0].pk, other.pk])
        assert not sending._due(tenant_a.whatsapp.pk, timezone.now()).filter(to_wa_id="254711000001").exists()
        sending._release(claim, claim.rows, retry_at=timezone.now())  # now due after the others
        report = outbox_drain(account_id=tenant_a.whatsapp.pk, sender=sender)
        assert report.sent == 5
    mine = [text for text in sender.sent if text.startswith("step-")]
    assert mine == ["step-0", "step-1", "step-2", "step-3"]


@pytest.mark.django_db
def test_a_row_in_flight_is_not_claimed_again(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        row = _row(tenant_a, "held")
        claim = sending._claim(sending._due(tenant_a.whatsapp.pk, timezone.now()), now=timezone.now())
        assert [r.pk for r in claim.rows] == [row.pk]
        row.refresh_from_db()
        assert row.status == "sending" and row.lease_token == claim.token and row.attempts == 1
        assert row.next_attempt_at is not None and row.next_attempt_at > timezone.now() + timedelta(seconds=60)
        assert outbox_drain(account_id=tenant_a.whatsapp.pk, sender=RecordingSender()).sent == 0
        assert outbox_deliver(outbox_id=row.pk, client=RecordingSender()).state == "skipped"


# --- errors in a batch --------------------------------------------------------------------


@pytest.mark.django_db
def test_retries_and_permanent_failures_in_one_batch(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        for i, key in enumerate(("ok-1", "retry-1", "limit-1", "perm-1", "ok-2")):
            _row(tenant_a, key, to=f"25471100030{i}")  # five customers: one batch
        report = outbox_drain(account_id=tenant_a.whatsapp.pk, sender=RecordingSender())
        assert (report.sent, report.retried, report.failed, report.lost) == (2, 2, 1, 0)
        rows = {row.idempotency_key: row for row in OutboxMessage.objects.all()}
        now = timezone.now()
        for key, code in (("retry-1", 503), ("limit-1", 130429)):
            retry = rows[key]
            assert (retry.status, retry.error_code, retry.attempts, retry.lease_token) == ("pending", code, 1, None)
            assert retry.next_attempt_at is not None and retry.next_attempt_at > now  # backed off: 2 s +-50%
        perm = rows["perm-1"]
        assert (perm.status, perm.delivery_status, perm.error_code) == ("failed", "failed", 131047)
        assert "Re-engagement message" in perm.error_title and perm.next_attempt_at is None
        assert {rows["ok-1"].wamid, rows["ok-2"].wamid} == {"wamid.test.ok-1", "wamid.test.ok-2"}
        # The retries are not due yet: a second drain right away sends nothing.
        assert outbox_drain(account_id=tenant_a.whatsapp.pk, sender=RecordingSender()).sent == 0


@pytest.mark.django_db
def test_a_drain_that_ends_with_retries_sets_a_wake_up(
    tenant_a: TenantSetup, drains: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    with tenant_context(tenant_a.organization):
        outbox_drain_release(account_id=tenant_a.whatsapp.pk, schema=current_schema())
        scheduling._redis(settings.REDIS_URL).delete(scheduling._wake_key(current_schema(), tenant_a.whatsapp.pk))
        _row(tenant_a, "retry-wake")
        sender = RecordingSender()
        monkeypatch.setattr(sending, "_sender_for", lambda account: sender)
        report = outbox_drain_cycle(account_id=tenant_a.whatsapp.pk)
        assert report.retried == 1
        row = OutboxMessage.objects.get()
    assert len(drains) == 1
    assert drains[0]["args"] == (tenant_a.whatsapp.pk,)
    assert drains[0]["headers"] == {"_schema_name": tenant_a.schema}
    assert row.next_attempt_at is not None
    expected = (row.next_attempt_at - timezone.now()).total_seconds()
    assert abs(drains[0]["countdown"] - expected) < 1.0


# --- coalesced drains ---------------------------------------------------------------------


@pytest.mark.django_db
def test_enqueueing_asks_for_one_drain_per_number(
    tenant_a: TenantSetup, drains: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    with tenant_context(tenant_a.organization):
        outbox_drain_release(account_id=tenant_a.whatsapp.pk, schema=current_schema())
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(5):
                outbox_enqueue(
                    account=tenant_a.whatsapp,
                    to_wa_id="254711000001",
                    message=wa.text(f"burst {i}"),
                    idempotency_key=f"burst-{i}",
                    window_expires_at=OPEN,
                )
        assert len(drains) == 1  # one drain for the burst, not five tasks
        outbox_drain_release(account_id=tenant_a.whatsapp.pk, schema=current_schema())
        with django_capture_on_commit_callbacks(execute=True):
            outbox_enqueue(
                account=tenant_a.whatsapp,
                to_wa_id="254711000001",
                message=wa.text("after the drain"),
                idempotency_key="burst-after",
                window_expires_at=OPEN,
            )
    assert len(drains) == 2
    assert all(asked["headers"] == {"_schema_name": tenant_a.schema} for asked in drains)
    outbox_drain_release(account_id=tenant_a.whatsapp.pk, schema=tenant_a.schema)


# --- the governor in batches --------------------------------------------------------------


def test_the_governor_grants_batches_live_first_and_keeps_the_reserve(settings: Any) -> None:
    settings.WHATSAPP_LIVE_RESERVE = 0.2
    number = f"batch-{time.monotonic_ns()}"
    first = governor.send_slots_take(phone_number_id=number, rate_per_second=10, live=3, bulk=10)
    assert (first.live, first.bulk) == (3, 5)  # 10 tokens: 3 live, then bulk down to the reserve of 2
    assert first.wait > 0
    reserve = governor.send_slots_take(phone_number_id=number, rate_per_second=10, live=2, bulk=0)
    assert (reserve.live, reserve.bulk, reserve.wait) == (2, 0, 0.0)
    empty = governor.send_slots_take(phone_number_id=number, rate_per_second=10, live=1, bulk=1)
    assert (empty.live, empty.bulk) == (0, 0)
    assert 0 < empty.wait <= 0.1


# --- concurrency and recovery (committed data: each thread has its own connection) --------


@pytest.fixture
def committed_tenant(committed_db: None, tenant_a: TenantSetup) -> Iterator[TenantSetup]:
    yield tenant_a
    with tenant_context(tenant_a.organization):
        OutboxMessage.objects.all().delete()


def test_two_concurrent_drains_send_every_row_exactly_once(committed_tenant: TenantSetup) -> None:
    tenant = committed_tenant
    with tenant_context(tenant.organization):
        for i in range(60):
            _row(tenant, f"pair-{i}", OutboxMessage.Priority.LIVE if i % 3 else OutboxMessage.Priority.BULK)
    sender = RecordingSender(delay=0.01)
    reports: list[sending.DrainReport] = []
    start = threading.Barrier(2)

    def drain() -> None:
        try:
            with tenant_context(tenant.organization):
                start.wait(5)
                reports.append(outbox_drain(account_id=tenant.whatsapp.pk, sender=sender, budget=30))
        finally:
            connection.close()

    workers = [threading.Thread(target=drain) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert len(reports) == 2
    assert sum(report.sent for report in reports) == 60
    assert Counter(sender.sent).most_common(1)[0][1] == 1  # no message went out twice
    assert len(sender.sent) == 60
    with tenant_context(tenant.organization):
        assert OutboxMessage.objects.filter(status="sent").count() == 60


def test_a_lapsed_claim_is_sent_again_and_its_late_result_discarded(
    committed_tenant: TenantSetup, drains: list[dict[str, Any]]
) -> None:
    tenant = committed_tenant
    with tenant_context(tenant.organization):
        row = _row(tenant, "crashed")
        # A worker claims the row, then dies before it records anything.
        crashed = sending._claim(sending._due(tenant.whatsapp.pk, timezone.now()), now=timezone.now())
        assert outbox_stuck_requeue() == 0  # the lease still holds
        OutboxMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        assert outbox_stuck_requeue() == 1
        assert [asked["args"] for asked in drains] == [(tenant.whatsapp.pk,)]
        sender = RecordingSender()
        assert outbox_drain(account_id=tenant.whatsapp.pk, sender=sender).sent == 1
        row.refresh_from_db()
        assert (row.status, row.wamid, row.attempts) == ("sent", "wamid.test.crashed", 2)
        # The first worker was only stalled after all: its result no longer counts.
        late = sending._record(crashed, [(crashed.rows[0], "wamid.late")], tenant.whatsapp)
        assert late[row.pk].state == "lost"
        row.refresh_from_db()
        assert row.wamid == "wamid.test.crashed"
        assert outbox_stuck_requeue() == 0


def test_the_drain_task_sends_through_the_fake_graph_api(
    committed_tenant: TenantSetup, graph_api: FakeGraphApi
) -> None:
    tenant = committed_tenant
    with tenant_context(tenant.organization):
        for i in range(25):
            _row(tenant, f"pooled-{i}")
        report = outbox_drain_cycle(account_id=tenant.whatsapp.pk)
    assert report.sent == 25
    assert graph_api.stats() == {"messages": 25, "distinct": 25, "duplicates": 0}
    sent = graph_api.sent_messages()[0]
    assert sent.path == f"/v21.0/{tenant.whatsapp.phone_number_id}/messages"
    assert sent.headers["Authorization"] == "Bearer token-alpha"
    assert sent.body["messaging_product"] == "whatsapp"


# --- the send pool ------------------------------------------------------------------------


def test_the_send_pool_replaces_a_connection_the_server_closed() -> None:
    """A kept-alive connection closed by the server is noticed before the next POST, not after."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[int] = []

    def serve() -> None:
        for n in range(2):
            conn, _ = server.accept()
            accepted.append(n)
            conn.recv(65536)
            body = json.dumps({"messages": [{"id": f"wamid.{n}"}]}).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            conn.sendall(head.encode() + body)
            time.sleep(0.05)
            conn.close()  # an idle keep-alive timeout on the server's side, without "Connection: close"

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    pool = GraphSendPool(base_url=f"http://127.0.0.1:{port}", version="v21.0")
    payload = {"to": "254711000001", "type": "text", "text": {"body": "hi"}}
    assert pool.send(phone_number_id="1", access_token="t", payload=payload) == "wamid.0"
    time.sleep(0.2)
    assert pool.send(phone_number_id="1", access_token="t", payload=payload) == "wamid.1"
    thread.join(5)
    server.close()
    assert accepted == [0, 1]


@pytest.mark.django_db
def test_the_sweeper_asks_for_drains_of_rows_left_pending(
    tenant_a: TenantSetup, tenant_b: TenantSetup, drains: list[dict[str, Any]]
) -> None:
    with tenant_context(tenant_a.organization):
        fresh = _row(tenant_a, "fresh")
        assert outbox_stuck_requeue() == 0  # due just now: its own drain is on the way
        OutboxMessage.objects.filter(pk=fresh.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=3))
        assert outbox_stuck_requeue() == 1
    with tenant_context(tenant_b.organization):
        assert outbox_stuck_requeue() == 0  # another tenant's rows are not this schema's business
    assert drains == [{"args": (tenant_a.whatsapp.pk,), "headers": {"_schema_name": tenant_a.schema}}]
