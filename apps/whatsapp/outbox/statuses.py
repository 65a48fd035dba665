"""Delivery statuses from Meta's webhooks: they only move forward (sent < delivered < read)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError
from apps.core.realtime import event_publish
from apps.whatsapp.handlers import status_routing
from apps.whatsapp.models import OutboxMessage
from apps.whatsapp.payloads import StatusUpdate

DELIVERY_RANK = {"": 0, "sent": 1, "delivered": 2, "read": 3}


class StatusForUnknownMessage(ApplicationError):
    code = "status_unknown_message"


def outbox_status_publish(row: OutboxMessage) -> None:
    """Tell the sockets that may see the row's conversation its delivery state (after commit)."""
    event_publish(
        event_type="message.status",
        data={
            "outbox_id": row.pk,
            "wamid": row.wamid,
            "status": row.delivery_status,
            "error": row.error_title,
            **status_routing(row.pk),
        },
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
        outbox_status_publish(row)
    return bool(updated)
