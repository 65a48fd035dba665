"""Turning a stored webhook event into domain rows, inside the tenant's schema."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.batches import delete_in_batches
from apps.core.tenancy import tenant_context, use_public_schema
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from apps.whatsapp.handlers import inbound_dispatch
from apps.whatsapp.outbox import StatusForUnknownMessage, outbox_status_apply
from apps.whatsapp.payloads import PayloadInvalid, parse_message, parse_status

logger = logging.getLogger(__name__)

# A status may overtake the API response that tells us the message's wamid: wait a little.
UNKNOWN_STATUS_ATTEMPTS = 5
STUCK_AFTER = timedelta(minutes=2)
PROCESSING_MS_MAX = 2_147_483_647  # the column's limit (PostgreSQL integer), ~24.8 days


class EventRetry(Exception):
    """The event cannot be processed yet; try again later."""


def webhook_event_process(*, event_id: int) -> str:
    """Process one stored event (idempotent); return its new state."""
    use_public_schema()
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update(skip_locked=True).filter(pk=event_id).first()
        if event is None:
            return "locked-or-missing"
        if event.state in (WebhookEvent.State.PROCESSED, WebhookEvent.State.IGNORED):
            return event.state
        account = WhatsAppAccount.objects.select_related("tenant").filter(phone_number_id=event.phone_number_id).first()
        if account is None:
            event.state = WebhookEvent.State.ORPHAN
            event.tenant = None
            event.save(update_fields=["state", "tenant"])
            return event.state
        event.tenant = account.tenant
        event.attempts += 1
        retry = False
        try:
            with transaction.atomic(), tenant_context(account.tenant):
                event.state = _dispatch(event, account)
                event.error = ""
        except PayloadInvalid as exc:
            event.state = WebhookEvent.State.FAILED
            event.error = exc.message
        except StatusForUnknownMessage as exc:
            if event.attempts < UNKNOWN_STATUS_ATTEMPTS:
                retry = True
                event.error = exc.message
            else:
                event.state = WebhookEvent.State.IGNORED
                event.error = exc.message + " Given up: probably a message sent outside Imaradesk."
        now = timezone.now()
        if event.state != WebhookEvent.State.PENDING:
            event.processed_at = now
            # Capped: an event processed weeks late (a long outage) must not fail on the column.
            event.processing_ms = min(int((now - event.received_at).total_seconds() * 1000), PROCESSING_MS_MAX)
        event.save()
    if retry:
        raise EventRetry(event.error)
    return event.state


def _dispatch(event: WebhookEvent, account: WhatsAppAccount) -> str:
    if event.kind == WebhookEvent.Kind.MESSAGE:
        inbound_dispatch(account, parse_message(event.payload))
        return WebhookEvent.State.PROCESSED
    if event.kind == WebhookEvent.Kind.STATUS:
        outbox_status_apply(status=parse_status(event.payload))
        return WebhookEvent.State.PROCESSED
    return WebhookEvent.State.IGNORED


def webhook_event_fail(*, event_id: int, error: str) -> None:
    """Record that processing kept crashing, so the console shows it and the sweeper leaves it."""
    use_public_schema()
    WebhookEvent.objects.filter(pk=event_id).exclude(state=WebhookEvent.State.PROCESSED).update(
        state=WebhookEvent.State.FAILED, error=error[:5000], processed_at=timezone.now()
    )


def webhook_event_replay(*, event: WebhookEvent) -> None:
    """Process an event again (after a fix, or once its number has been added)."""
    from apps.whatsapp.tasks import webhook_event_process_task

    WebhookEvent.objects.filter(pk=event.pk).update(
        state=WebhookEvent.State.PENDING, error="", attempts=0, enqueued_at=timezone.now()
    )
    transaction.on_commit(
        lambda: webhook_event_process_task.apply_async(args=(event.pk,), headers={"_schema_name": "public"})
    )


def webhook_events_stuck_requeue() -> int:
    """Re-enqueue pending events whose task was lost (worker died, Redis push failed)."""
    from apps.whatsapp.tasks import webhook_event_process_task

    use_public_schema()
    cutoff = timezone.now() - STUCK_AFTER
    stuck = list(
        WebhookEvent.objects.filter(state=WebhookEvent.State.PENDING, tenant__isnull=False, enqueued_at__lt=cutoff)
        .order_by("id")
        .values_list("pk", flat=True)[:1000]
    )
    if stuck:
        WebhookEvent.objects.filter(pk__in=stuck).update(enqueued_at=timezone.now())
        for event_id in stuck:
            webhook_event_process_task.apply_async(args=(event_id,), headers={"_schema_name": "public"})
        logger.warning("re-enqueued %d stuck webhook events", len(stuck))
    return len(stuck)


# Meta redelivers an unacknowledged webhook for up to 7 days; an event is kept longer than
# that, so that its dedup key still refuses a late copy.
MIN_EVENT_RETENTION_DAYS = 8
PRUNE_BATCH = 5000


def webhook_events_prune(*, older_than_days: int, now: datetime | None = None) -> int:
    """Delete handled webhook events (processed, ignored, orphan) received more than N days ago.

    Pending and failed events stay whatever their age: they still need a retry or a person.
    The messages and statuses they carried live on in the tenants' own tables.
    """
    use_public_schema()
    days = max(older_than_days, MIN_EVENT_RETENTION_DAYS)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    handled = (WebhookEvent.State.PROCESSED, WebhookEvent.State.IGNORED, WebhookEvent.State.ORPHAN)
    old = WebhookEvent.objects.filter(state__in=handled, received_at__lt=cutoff)
    return delete_in_batches(old, batch_size=PRUNE_BATCH)
