"""The outbox: every send is a row first, delivered by a worker under the rate governor.

- Enqueueing is idempotent: the same idempotency key never makes a second row.
- Delivery holds the row lock across the Graph call, so two workers never send one row.
  If a worker dies mid-call the transaction rolls back and the row is sent again later:
  at-least-once, the only safe choice when Meta's answer was lost.
- Transient failures (429, 130429, 5xx, network) back off exponentially with jitter;
  permanent ones mark the row failed with Meta's code and title.
- Delivery statuses only move forward: sent < delivered < read.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError, ConflictError
from apps.core.queue import enqueue_on_commit
from apps.core.realtime import event_publish
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp import governor
from apps.whatsapp.client import GraphApiError, WhatsAppClient
from apps.whatsapp.messages import Outgoing
from apps.whatsapp.models import OutboxMessage
from apps.whatsapp.payloads import StatusUpdate

logger = logging.getLogger(__name__)

DELIVERY_RANK = {"": 0, "sent": 1, "delivered": 2, "read": 3}
# A governor wait shorter than this is slept in the worker; a longer one reschedules the task.
INLINE_WAIT_MAX = 0.5


class WindowClosed(ConflictError):
    code = "window_closed"


class StatusForUnknownMessage(ApplicationError):
    code = "status_unknown_message"


@dataclass(frozen=True)
class DeliveryOutcome:
    state: str  # sent | failed | skipped | retry
    retry_in: float | None = None


def outbox_enqueue(
    *,
    account: WhatsAppAccount,
    to_wa_id: str,
    message: Outgoing,
    idempotency_key: str,
    window_expires_at: datetime | None,
    priority: int = OutboxMessage.Priority.LIVE,
) -> OutboxMessage:
    """Queue a message for sending; a free-form message outside the 24-hour window is refused here."""
    now = timezone.now()
    if message.needs_open_window and (window_expires_at is None or window_expires_at <= now):
        raise WindowClosed(
            _(
                "The customer's 24-hour window is closed: WhatsApp only accepts an approved template now. "
                "Send a template instead."
            ),
            extra={"to": to_wa_id, "window_expires_at": window_expires_at.isoformat() if window_expires_at else None},
        )
    row, created = OutboxMessage.objects.get_or_create(
        idempotency_key=idempotency_key,
        defaults={
            "account": account,
            "to_wa_id": to_wa_id,
            "kind": message.kind,
            "payload": {"to": to_wa_id, **message.payload},
            "priority": priority,
            "next_attempt_at": now,
        },
    )
    if created:
        from apps.whatsapp.tasks import outbox_send_task

        enqueue_on_commit(outbox_send_task, row.pk)
    return row


def _backoff(attempts: int) -> float:
    return float(min(300, 2 ** min(attempts, 9))) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto


def _client_for(account: WhatsAppAccount) -> WhatsAppClient:
    return WhatsAppClient(phone_number_id=account.phone_number_id, access_token=account.access_token)


def outbox_deliver(*, outbox_id: int, client: WhatsAppClient | None = None) -> DeliveryOutcome:
    """Send one outbox row if it is still due; say what happened and when to try again."""
    now = timezone.now()
    with transaction.atomic():
        # Lock the outbox row only (`of`): FOR UPDATE would also lock the joined number, and
        # every other send on that number would then skip its row while this one is in flight.
        row = (
            OutboxMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("account")
            .filter(pk=outbox_id, status__in=[OutboxMessage.Status.PENDING, OutboxMessage.Status.SENDING])
            .first()
        )
        if row is None:
            return DeliveryOutcome("skipped")
        account = row.account
        wait = governor.send_slot_take(
            phone_number_id=account.phone_number_id,
            rate_per_second=account.rate_limit_per_second,
            bulk=row.priority == OutboxMessage.Priority.BULK,
        )
        if wait > INLINE_WAIT_MAX:
            return DeliveryOutcome("retry", retry_in=wait)
        if wait > 0:
            governor.send_slot_wait(
                phone_number_id=account.phone_number_id,
                rate_per_second=account.rate_limit_per_second,
                bulk=row.priority == OutboxMessage.Priority.BULK,
                max_wait=INLINE_WAIT_MAX * 2,
            )
        row.attempts += 1
        row.last_attempt_at = now
        try:
            if account.transport == WhatsAppAccount.Transport.SANDBOX:
                wamid = f"wamid.sandbox.{uuid.uuid4().hex}"
            else:
                wamid = (client or _client_for(account)).send(row.payload)
        except GraphApiError as exc:
            row.error_code = exc.code or exc.status or None
            row.error_title = str(exc)[:2000]
            if exc.retryable and row.attempts < settings.WHATSAPP_SEND_MAX_ATTEMPTS:
                delay = _backoff(row.attempts)
                row.status = OutboxMessage.Status.PENDING
                row.next_attempt_at = now + timedelta(seconds=delay)
                row.save()
                logger.warning("outbox %s: transient %s; retry %d in %.1fs", row.pk, exc, row.attempts, delay)
                return DeliveryOutcome("retry", retry_in=delay)
            row.status = OutboxMessage.Status.FAILED
            row.delivery_status = OutboxMessage.Delivery.FAILED
            row.next_attempt_at = None
            row.save()
            logger.warning("outbox %s failed for good: %s", row.pk, exc)
            _publish_status(row)  # event_publish sends after commit, to this schema
            return DeliveryOutcome("failed")
        row.status = OutboxMessage.Status.SENT
        row.wamid = wamid
        row.sent_at = now
        row.next_attempt_at = None
        row.error_code = None
        row.error_title = ""
        row.save()
    if account.transport == WhatsAppAccount.Transport.SANDBOX:
        from apps.whatsapp.sandbox import sandbox_statuses_schedule

        sandbox_statuses_schedule(account=account, outbox=row)
    return DeliveryOutcome("sent")


def _publish_status(row: OutboxMessage) -> None:
    event_publish(
        event_type="message.status",
        data={"outbox_id": row.pk, "wamid": row.wamid, "status": row.delivery_status, "error": row.error_title},
    )


def outbox_status_apply(*, status: StatusUpdate) -> bool:
    """Apply a delivery status; return False when it would move the state backwards (ignored)."""
    row = OutboxMessage.objects.filter(wamid=status.wamid).first()
    if row is None:
        raise StatusForUnknownMessage(
            _("No outgoing message has the id %(wamid)s (yet).") % {"wamid": status.wamid},
            extra={"wamid": status.wamid},
        )
    rows = OutboxMessage.objects.filter(pk=row.pk)
    if status.status == "failed":
        error = status.errors[0] if status.errors else None
        updated = rows.filter(delivery_status__in=["", "sent"]).update(
            delivery_status=OutboxMessage.Delivery.FAILED,
            error_code=error.code if error else None,
            error_title=(f"{error.title} {error.details}".strip() if error else _("Failed")),
        )
    elif status.status in DELIVERY_RANK:
        rank = DELIVERY_RANK[status.status]
        lower = [name for name, value in DELIVERY_RANK.items() if value < rank]
        changes: dict[str, object] = {"delivery_status": status.status}
        if status.status == "delivered":
            changes["delivered_at"] = status.timestamp
        if status.status == "read":
            changes["read_at"] = status.timestamp
            rows.filter(delivered_at__isnull=True).update(delivered_at=status.timestamp)
        updated = rows.filter(delivery_status__in=lower).update(**changes)
    else:
        return False
    if updated:
        row.refresh_from_db()
        _publish_status(row)  # event_publish sends after commit, to this schema
    return bool(updated)
