"""Sending outbox rows: claim, take send slots, call the Graph API outside any transaction, record.

A claim is one short transaction: the due rows of one number, live before bulk, are locked
with FOR UPDATE SKIP LOCKED (the outbox rows only), marked `sending` under a fresh lease
token, and `next_attempt_at` becomes the lease's end. The Graph calls then run concurrently
over a shared keep-alive connection pool with no transaction open. The results are recorded
in a second short transaction, only for rows that still carry the claim's token.

The one window for a duplicate send: a worker that dies (or stalls past the lease) after
Meta accepted a message but before its result is recorded. Its rows are claimed again once
the lease lapses, and sent again: at-least-once, the only safe choice when Meta's answer was
lost. A late result from the stalled worker is then discarded (its token no longer matches).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from apps.tenants.models import WhatsAppAccount
from apps.whatsapp import governor
from apps.whatsapp.client import GraphApiError, NumberSender, WhatsAppClient, graph_send_pool
from apps.whatsapp.models import Media, OutboxMessage
from apps.whatsapp.outbox.statuses import outbox_status_publish

logger = logging.getLogger(__name__)

# A governor wait shorter than this is slept in the worker; a longer one hands the rows back.
INLINE_WAIT_MAX = 0.5
# A pending row this late was never picked up: its drain task was lost.
STUCK_AFTER = timedelta(minutes=2)
_ACTIVE = (OutboxMessage.Status.PENDING, OutboxMessage.Status.SENDING)


class MessageSender(Protocol):
    def send(self, payload: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class DeliveryOutcome:
    state: str  # sent | failed | skipped | retry | lost | held (the number is switched off)
    retry_in: float | None = None


@dataclass
class DrainReport:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0  # handed back unsent: the governor asked for a long wait
    lost: int = 0  # results discarded: the claim had lapsed and the rows were claimed again
    more: bool = False  # the time budget ran out with rows still due
    held: bool = False  # the number is switched off: nothing was claimed


@dataclass(frozen=True)
class _Claim:
    token: uuid.UUID
    rows: list[OutboxMessage]


_Result = str | GraphApiError  # the new wamid, or why not


@cache
def _http() -> httpx.Client:
    # One pool per process, shared by every number: keep-alive connections to graph.facebook.com.
    size = settings.WHATSAPP_SEND_CONCURRENCY
    return httpx.Client(limits=httpx.Limits(max_connections=size, max_keepalive_connections=size))


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.WHATSAPP_SEND_CONCURRENCY, thread_name_prefix="outbox-send")


def _sender_for(account: WhatsAppAccount) -> MessageSender:
    pool = graph_send_pool(settings.WHATSAPP_GRAPH_URL, settings.WHATSAPP_GRAPH_VERSION)
    if pool is not None:
        return NumberSender(pool=pool, phone_number_id=account.phone_number_id, access_token=account.access_token)
    return WhatsAppClient(phone_number_id=account.phone_number_id, access_token=account.access_token, http=_http())


def _backoff(attempts: int) -> float:
    return float(min(300, 2 ** min(attempts, 9))) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto


def _batch_size(account: WhatsAppAccount) -> int:
    # A fifth of a second's worth of sends: big enough to amortise the claim, small enough
    # that a live reply queued behind a batch waits a fraction of a second.
    return max(1, min(settings.WHATSAPP_SEND_BATCH, account.rate_limit_per_second // 5))


def _claim(rows: QuerySet[OutboxMessage], *, now: datetime) -> _Claim:
    token = uuid.uuid4()
    lease_end = now + timedelta(seconds=settings.WHATSAPP_SEND_LEASE_SECONDS)
    with transaction.atomic():
        # `of` locks the outbox rows only: a lock on the joined number would make every other
        # send on that number skip its rows while this batch is in flight.
        claimed = list(rows.select_for_update(skip_locked=True, of=("self",)))
        if claimed:
            OutboxMessage.objects.filter(pk__in=[row.pk for row in claimed]).update(
                status=OutboxMessage.Status.SENDING,
                lease_token=token,
                next_attempt_at=lease_end,
                attempts=F("attempts") + 1,
                last_attempt_at=now,
            )
    for row in claimed:
        if row.status == OutboxMessage.Status.SENDING:
            logger.warning("outbox %s: the claim on it lapsed; sending it again (at-least-once)", row.pk)
        row.status = OutboxMessage.Status.SENDING
        row.lease_token = token
        row.next_attempt_at = lease_end
        row.attempts += 1
        row.last_attempt_at = now
    return _Claim(token=token, rows=claimed)


def _fenced(claim: _Claim, rows: Sequence[OutboxMessage]) -> QuerySet[OutboxMessage]:
    """These rows, as far as the claim still holds them."""
    return OutboxMessage.objects.filter(
        pk__in=[row.pk for row in rows], lease_token=claim.token, status=OutboxMessage.Status.SENDING
    )


def _release(claim: _Claim, rows: Sequence[OutboxMessage], *, retry_at: datetime) -> None:
    """Hand claimed rows back unsent (no attempt was made)."""
    _fenced(claim, rows).update(
        status=OutboxMessage.Status.PENDING, lease_token=None, next_attempt_at=retry_at, attempts=F("attempts") - 1
    )


def _needs_upload(row: OutboxMessage) -> bool:
    """An attachment whose message does not yet name a Meta media id (or a link)."""
    if row.kind != "media":
        return False
    body = row.payload.get(str(row.payload.get("type", "")), {})
    return isinstance(body, dict) and not body.get("id") and not body.get("link")


def _media_upload(account: WhatsAppAccount, media: Media) -> str:
    if account.transport == WhatsAppAccount.Transport.SANDBOX:
        return f"sandbox-media-{media.pk}"
    client = WhatsAppClient(phone_number_id=account.phone_number_id, access_token=account.access_token, http=_http())
    with media.file.open("rb") as handle:
        content = handle.read()
    return client.media_upload(content=content, mime_type=media.mime_type, filename=media.filename or "file")


def _attachments_upload(
    claim: _Claim, rows: Sequence[OutboxMessage], account: WhatsAppAccount
) -> tuple[list[OutboxMessage], list[tuple[OutboxMessage, _Result]]]:
    """Upload the claimed rows' attachments; return the rows ready to send and the failed uploads.

    The media id is stored on the Media row as soon as Meta gives it, so a send that fails
    afterwards is retried with the same upload. A crash between the upload and that write
    costs one more upload of the file (Meta forgets unused media after 30 days), never a lost message.
    """
    ready: list[OutboxMessage] = []
    failed: list[tuple[OutboxMessage, _Result]] = []
    for row in rows:
        if not _needs_upload(row):
            ready.append(row)
            continue
        media = Media.objects.filter(pk=row.media_id).first() if row.media_id else None
        if media is None or not media.file:
            failed.append((row, GraphApiError(status=400, code=None, title="The attachment is no longer stored")))
            continue
        try:
            if not media.media_id:
                media_id = _media_upload(account, media)
                Media.objects.filter(pk=media.pk).update(media_id=media_id)
                media.media_id = media_id
        except GraphApiError as exc:
            failed.append((row, exc))
            continue
        except Exception as exc:  # storage or network trouble: a transient failure, retried
            logger.exception("outbox %s: could not upload its attachment (media %s)", row.pk, media.pk)
            failed.append((row, GraphApiError(status=0, code=None, title=f"{type(exc).__name__}: {exc}")))
            continue
        kind = str(row.payload["type"])
        row.payload = {**row.payload, kind: {**row.payload[kind], "id": media.media_id}}
        _fenced(claim, [row]).update(payload=row.payload)
        ready.append(row)
    return ready, failed


def _send(sender: MessageSender, account: WhatsAppAccount, row: OutboxMessage) -> _Result:
    if account.transport == WhatsAppAccount.Transport.SANDBOX:
        return f"wamid.sandbox.{uuid.uuid4().hex}"
    try:
        return sender.send(row.payload)
    except GraphApiError as exc:
        return exc
    except Exception as exc:  # the edge of a send thread: record it as a transient failure
        logger.exception("outbox %s: unexpected error while sending", row.pk)
        return GraphApiError(status=0, code=None, title=f"{type(exc).__name__}: {exc}")


def _record_sent(claim: _Claim, sent: Sequence[tuple[OutboxMessage, str]], *, now: datetime) -> set[int]:
    """Mark rows sent with their wamids in one statement, only where the claim still holds; return those ids."""
    if not sent:
        return set()
    # One UPDATE ... FROM (VALUES ...) for the whole batch: bulk_update's CASE expressions cost
    # milliseconds of Python per row, more than the Graph call itself.
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    values = ", ".join(["(%s::bigint, %s::text)"] * len(sent))
    params: list[int | str | datetime] = [now]
    for row, wamid in sent:
        params += [row.pk, wamid]
    params += [str(claim.token), OutboxMessage.Status.SENDING]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS o SET status = 'sent', lease_token = NULL, wamid = v.wamid, sent_at = %s, "  # noqa: S608 - names from the model, values as parameters
            "next_attempt_at = NULL, error_code = NULL, error_title = '' "
            f"FROM (VALUES {values}) AS v (id, wamid) "
            "WHERE o.id = v.id AND o.lease_token = %s::uuid AND o.status = %s RETURNING o.id",
            params,
        )
        return {int(pk) for (pk,) in cursor.fetchall()}


def _record(
    claim: _Claim, results: Sequence[tuple[OutboxMessage, _Result]], account: WhatsAppAccount
) -> dict[int, DeliveryOutcome]:
    now = timezone.now()
    outcomes: dict[int, DeliveryOutcome] = {}
    sent = [(row, result) for row, result in results if isinstance(result, str)]
    with transaction.atomic():
        held = _record_sent(claim, sent, now=now)
        for row, wamid in sent:
            if row.pk in held:
                row.status, row.wamid, row.sent_at, row.lease_token = OutboxMessage.Status.SENT, wamid, now, None
                outcomes[row.pk] = DeliveryOutcome("sent")
        for row, result in results:
            if isinstance(result, str):
                continue
            # Failures are few: one fenced UPDATE each.
            changes: dict[str, object] = {
                "lease_token": None,
                "error_code": result.code or result.status or None,
                "error_title": str(result)[:2000],
            }
            if result.retryable and row.attempts < settings.WHATSAPP_SEND_MAX_ATTEMPTS:
                delay = _backoff(row.attempts)
                changes |= {"status": OutboxMessage.Status.PENDING, "next_attempt_at": now + timedelta(seconds=delay)}
                outcome = DeliveryOutcome("retry", retry_in=delay)
            else:
                changes |= {
                    "status": OutboxMessage.Status.FAILED,
                    "delivery_status": OutboxMessage.Delivery.FAILED,
                    "next_attempt_at": None,
                }
                outcome = DeliveryOutcome("failed")
            if _fenced(claim, [row]).update(**changes):
                for name, value in changes.items():
                    setattr(row, name, value)
                held.add(row.pk)
                outcomes[row.pk] = outcome
                logger.warning("outbox %s: %s (%s, attempt %d)", row.pk, result, outcome.state, row.attempts)
                if outcome.state == "failed":
                    outbox_status_publish(row)
        for row, result in results:
            if row.pk not in held:
                logger.warning("outbox %s: result %r discarded, the claim had lapsed", row.pk, result)
                outcomes[row.pk] = DeliveryOutcome("lost")
    if account.transport == WhatsAppAccount.Transport.SANDBOX:
        from apps.whatsapp.sandbox import sandbox_statuses_schedule

        for row, _result in sent:
            if outcomes[row.pk].state == "sent":
                sandbox_statuses_schedule(account=account, outbox=row)
    return outcomes


def outbox_deliver(*, outbox_id: int, client: MessageSender | None = None) -> DeliveryOutcome:
    """Send one outbox row now, whatever its due time, unless it is done or another worker holds it."""
    now = timezone.now()
    claim = _claim(
        OutboxMessage.objects.filter(pk=outbox_id).filter(
            Q(status=OutboxMessage.Status.PENDING)
            | Q(status=OutboxMessage.Status.SENDING, next_attempt_at__lte=now)
            | Q(status=OutboxMessage.Status.SENDING, next_attempt_at__isnull=True)
        ),
        now=now,
    )
    if not claim.rows:
        return DeliveryOutcome("skipped")
    row = claim.rows[0]
    account = WhatsAppAccount.objects.get(pk=row.account_id)
    if not account.is_active:
        _release(claim, [row], retry_at=now)  # held: unsent, no attempt counted
        return DeliveryOutcome("held")
    _ready, upload_failed = _attachments_upload(claim, [row], account)
    if upload_failed:
        return _record(claim, upload_failed, account)[row.pk]
    bulk = row.priority == OutboxMessage.Priority.BULK
    grant = governor.send_slots_take(
        phone_number_id=account.phone_number_id,
        rate_per_second=account.rate_limit_per_second,
        live=0 if bulk else 1,
        bulk=1 if bulk else 0,
    )
    if grant.live + grant.bulk == 0:
        taken = grant.wait <= INLINE_WAIT_MAX and governor.send_slot_wait(
            phone_number_id=account.phone_number_id,
            rate_per_second=account.rate_limit_per_second,
            bulk=bulk,
            max_wait=INLINE_WAIT_MAX * 2,
        )
        if not taken:
            _release(claim, [row], retry_at=now + timedelta(seconds=grant.wait))
            return DeliveryOutcome("retry", retry_in=grant.wait)
    result = _send(client or _sender_for(account), account, row)
    return _record(claim, [(row, result)], account)[row.pk]


def _due(account_id: int, now: datetime) -> QuerySet[OutboxMessage]:
    # A `sending` row is due again only once its lease has lapsed (its worker died). Only a
    # recipient's oldest unsent row is ever due: a batch's sends run concurrently, and a retry
    # must not let the next message overtake it, so a customer reads them in the order queued.
    earlier = OutboxMessage.objects.filter(
        account_id=account_id, to_wa_id=OuterRef("to_wa_id"), status__in=_ACTIVE, pk__lt=OuterRef("pk")
    )
    return (
        OutboxMessage.objects.filter(account_id=account_id, status__in=_ACTIVE, next_attempt_at__lte=now)
        .exclude(Exists(earlier))
        .order_by("priority", "next_attempt_at", "pk")
    )


def _deliver_batch(
    claim: _Claim, account: WhatsAppAccount, sender: MessageSender, report: DrainReport, deadline: float
) -> bool:
    """Send a claimed batch as send slots come; False when the governor asked for a long wait."""
    waiting, upload_failed = _attachments_upload(claim, claim.rows, account)  # live first: the claim's order
    in_flight: list[tuple[OutboxMessage, Future[_Result]]] = []
    throttled = False
    while waiting:
        live = [row for row in waiting if row.priority == OutboxMessage.Priority.LIVE]
        bulk = [row for row in waiting if row.priority != OutboxMessage.Priority.LIVE]
        grant = governor.send_slots_take(
            phone_number_id=account.phone_number_id,
            rate_per_second=account.rate_limit_per_second,
            live=len(live),
            bulk=len(bulk),
        )
        for row in live[: grant.live] + bulk[: grant.bulk]:
            in_flight.append((row, _pool().submit(_send, sender, account, row)))
        waiting = live[grant.live :] + bulk[grant.bulk :]
        if not waiting:
            break
        if grant.wait > INLINE_WAIT_MAX or time.monotonic() + grant.wait > deadline:
            # Hand the rest back rather than sit on it: the next claim orders live first again.
            _release(claim, waiting, retry_at=timezone.now() + timedelta(seconds=grant.wait))
            report.released += len(waiting)
            throttled = True
            break
        # Wait for 20 ms' worth of tokens, not for the next single one: fewer governor calls.
        rate = account.rate_limit_per_second
        time.sleep(max(grant.wait, min(len(waiting), rate * 0.02) / rate))
    results = upload_failed + [(row, future.result()) for row, future in in_flight]
    for outcome in _record(claim, results, account).values():
        if outcome.state == "sent":
            report.sent += 1
        elif outcome.state == "failed":
            report.failed += 1
        elif outcome.state == "retry":
            report.retried += 1
        else:
            report.lost += 1
    return not throttled


def outbox_drain(*, account_id: int, sender: MessageSender | None = None, budget: float | None = None) -> DrainReport:
    """Send one number's due rows, batch after batch, until none is due or the time budget is spent."""
    account = WhatsAppAccount.objects.get(pk=account_id)
    report = DrainReport()
    if not account.is_active:
        report.held = True  # switched off: the rows wait, unclaimed, until it is back on
        return report
    sender = sender or _sender_for(account)
    deadline = time.monotonic() + (settings.WHATSAPP_DRAIN_SECONDS if budget is None else budget)
    limit = _batch_size(account)
    while True:
        now = timezone.now()
        claim = _claim(_due(account_id, now)[:limit], now=now)
        if not claim.rows:
            break
        if not _deliver_batch(claim, account, sender, report, deadline):
            break
        if time.monotonic() >= deadline:
            report.more = True
            break
    return report


def outbox_next_due_in(*, account_id: int) -> float | None:
    """Seconds until this number's earliest waiting row falls due (0.0 if one is due), or None."""
    earliest = (
        OutboxMessage.objects.filter(account_id=account_id, status__in=_ACTIVE)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if earliest is None:
        return None
    return max(0.0, (earliest - timezone.now()).total_seconds())


def outbox_stuck_list() -> dict[int, int]:
    """Numbers with rows nobody is sending: pending long past due, or claimed by a lapsed lease."""
    now = timezone.now()
    stuck = OutboxMessage.objects.filter(
        Q(status=OutboxMessage.Status.PENDING, next_attempt_at__lt=now - STUCK_AFTER)
        | Q(status=OutboxMessage.Status.SENDING, next_attempt_at__lt=now)
    ).filter(account__is_active=True)  # a switched-off number's rows are held, not stuck
    return dict(stuck.values("account_id").annotate(rows=Count("pk")).order_by().values_list("account_id", "rows"))
