"""Queueing sends: every message is an outbox row first, keyed by an idempotency key."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.exceptions import ConflictError
from apps.core.tenancy import current_schema
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.messages import Outgoing
from apps.whatsapp.models import Media, OutboxMessage
from apps.whatsapp.outbox.scheduling import outbox_drain_request


class WindowClosed(ConflictError):
    code = "window_closed"


class IdempotencyKeyReused(ConflictError):
    code = "idempotency_key_reused"


def outbox_enqueue(
    *,
    account: WhatsAppAccount,
    to_wa_id: str,
    message: Outgoing,
    idempotency_key: str,
    window_expires_at: datetime | None,
    priority: int = OutboxMessage.Priority.LIVE,
    media: Media | None = None,
) -> OutboxMessage:
    """Queue a message for sending; a free-form message outside the 24-hour window is refused here.

    `window_expires_at` is the end of the recipient's window on `account`: WhatsApp keeps one
    per business number, and another number's window does not let this one send.
    """
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
            "media": media,
        },
    )
    if not created and (row.account_id != account.pk or row.to_wa_id != to_wa_id):
        # The same key for another recipient is a caller's bug, not a retry: answering with the
        # first row would report this message as queued when it never will be.
        raise IdempotencyKeyReused(
            _("This idempotency key was already used for a message to someone else."),
            extra={"idempotency_key": idempotency_key},
        )
    if created:
        # The schema now: the commit may run after a nested tenant_context has exited.
        schema, account_id = current_schema(), account.pk
        transaction.on_commit(lambda: outbox_drain_request(account_id=account_id, schema=schema))
    return row
