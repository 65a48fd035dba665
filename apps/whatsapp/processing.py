"""Turning a stored webhook event into domain rows, inside the tenant's schema."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from apps.core.batches import delete_in_batches
from apps.core.tenancy import tenant_context, use_public_schema
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from apps.whatsapp.handlers import inbound_dispatch
from apps.whatsapp.message_templates import message_template_category_apply, message_template_status_apply
from apps.whatsapp.outbox import StatusForUnknownMessage, outbox_status_apply
from apps.whatsapp.payloads import PayloadInvalid, parse_message, parse_status
from apps.whatsapp.payloads.templates import parse_template_category, parse_template_status

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
        if event.kind == WebhookEvent.Kind.ACCOUNT:
            _business_account_change_process(event)
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
        if event.state != WebhookEvent.State.PENDING:
            _processed_now(event)
        event.save()
    if retry:
        raise EventRetry(event.error)
    return event.state


def _processed_now(event: WebhookEvent) -> None:
    now = timezone.now()
    event.processed_at = now
    # Capped: an event processed weeks late (a long outage) must not fail on the column.
    event.processing_ms = min(int((now - event.received_at).total_seconds() * 1000), PROCESSING_MS_MAX)


def _business_account_change_process(event: WebhookEvent) -> None:
    """Apply a business account's own change (a template's status) in the tenant it was routed to."""
    if event.tenant_id is None:
        _business_account_orphan_route(event)
        return
    accounts = list(
        WhatsAppAccount.objects.select_related("tenant").filter(tenant_id=event.tenant_id, waba_id=event.waba_id)
    )
    event.attempts += 1
    if not accounts:
        event.state = WebhookEvent.State.IGNORED
        event.error = f"No number of this organization is in WhatsApp Business account {event.waba_id} any more."
    else:
        try:
            with transaction.atomic(), tenant_context(accounts[0].tenant):
                event.state, event.error = _business_account_dispatch(event, accounts)
        except PayloadInvalid as exc:
            event.state = WebhookEvent.State.FAILED
            event.error = exc.message
    _processed_now(event)
    event.save()


def _business_account_dispatch(event: WebhookEvent, accounts: list[WhatsAppAccount]) -> tuple[str, str]:
    field = str(event.payload.get("field", ""))
    if field == "message_template_status_update":
        outcome = message_template_status_apply(accounts=accounts, update=parse_template_status(event.payload))
    elif field == "template_category_update":
        outcome = message_template_category_apply(accounts=accounts, update=parse_template_category(event.payload))
    else:
        # Meta's routine news about the account (quality, limits, reviews): stored, not acted on.
        return WebhookEvent.State.IGNORED, f"Imaradesk does not act on {field or 'unnamed'!r} changes of an account."
    if outcome.applied:
        return WebhookEvent.State.PROCESSED, ""
    return WebhookEvent.State.IGNORED, outcome.note


def _process_soon(*, event_id: int) -> None:
    from apps.whatsapp.tasks import webhook_event_process_task

    webhook_event_process_task.apply_async(args=(event_id,), headers={"_schema_name": "public"})


def _business_account_orphan_route(event: WebhookEvent) -> None:
    """Replay an orphan business-account change: store it for the tenants that have the account now."""
    tenant_ids = sorted(set(WhatsAppAccount.objects.filter(waba_id=event.waba_id).values_list("tenant_id", flat=True)))
    if not tenant_ids:
        event.state = WebhookEvent.State.ORPHAN
        event.save(update_fields=["state"])
        return
    if event.signature != "platform":
        # Only the platform's secret speaks for an account that no number had on arrival: a
        # tenant's own secret could have signed it for an account another tenant adds later.
        event.state = WebhookEvent.State.IGNORED
        event.error = (
            "Signed with a number's own app secret, for a WhatsApp Business account none of its numbers was in:"
            " not applied."
        )
    else:
        for tenant_id in tenant_ids:
            routed, created = WebhookEvent.objects.get_or_create(
                dedup_key=f"{event.dedup_key}:{tenant_id}",  # as ingest would have stored it
                defaults={
                    "received_at": event.received_at,
                    "tenant_id": tenant_id,
                    "waba_id": event.waba_id,
                    "kind": event.kind,
                    "signature": event.signature,
                    "payload": event.payload,
                    "enqueued_at": timezone.now(),
                },
            )
            if created:
                transaction.on_commit(partial(_process_soon, event_id=routed.pk))
        event.state = WebhookEvent.State.PROCESSED
        event.error = ""
    _processed_now(event)
    event.save()


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
