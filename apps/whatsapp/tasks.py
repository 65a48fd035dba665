from __future__ import annotations

import logging
from dataclasses import asdict

from celery import Task, shared_task
from django.conf import settings

from apps.core.exceptions import ApplicationError
from apps.core.queue import enqueue_on_commit
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.client import GraphApiError
from apps.whatsapp.media import media_download, media_download_failed, media_download_overdue
from apps.whatsapp.message_templates import message_templates_accounts, message_templates_sync
from apps.whatsapp.models import Media
from apps.whatsapp.outbox import outbox_deliver, outbox_drain_cycle, outbox_stuck_requeue
from apps.whatsapp.processing import (
    EventRetry,
    webhook_event_fail,
    webhook_event_process,
    webhook_events_prune,
    webhook_events_stuck_requeue,
)

logger = logging.getLogger(__name__)

EVENT_MAX_RETRIES = 6


@shared_task(bind=True, max_retries=EVENT_MAX_RETRIES, acks_late=True)
def webhook_event_process_task(self: Task, event_id: int) -> str:  # type: ignore[type-arg]
    try:
        return webhook_event_process(event_id=event_id)
    except EventRetry as exc:
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc
    except Exception as exc:
        if self.request.retries >= EVENT_MAX_RETRIES:
            logger.exception("webhook event %s keeps failing; marking it failed", event_id)
            webhook_event_fail(event_id=event_id, error=f"{type(exc).__name__}: {exc}")
            return "failed"
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc


@shared_task(acks_late=True)
def outbox_drain_task(account_id: int) -> dict[str, int | bool]:
    """Send one number's due outbox rows in batches (what `outbox_enqueue` schedules)."""
    return asdict(outbox_drain_cycle(account_id=account_id))


@shared_task(bind=True, max_retries=None, acks_late=True)
def outbox_send_task(self: Task, outbox_id: int) -> str:  # type: ignore[type-arg]
    """Send one row by itself: for tasks queued before the batch sender, and for manual re-sends."""
    outcome = outbox_deliver(outbox_id=outbox_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.state


@shared_task
def webhook_events_sweep_task() -> int:
    return webhook_events_stuck_requeue()


@shared_task
def webhook_events_prune_task() -> int:
    """Daily: handled webhook events older than WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS go."""
    return webhook_events_prune(older_than_days=settings.WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS)


@shared_task
def outbox_sweep_task() -> int:
    """Queue drains for outbox rows whose task was lost or whose claim lapsed (runs per tenant)."""
    return outbox_stuck_requeue()


@shared_task
def sandbox_status_task(account_id: int, wamid: str, recipient: str, status: str) -> None:
    from apps.whatsapp.sandbox import sandbox_status_send

    sandbox_status_send(account_id=account_id, wamid=wamid, recipient=recipient, status=status)


# The number of tries is bounded by the row (WHATSAPP_MEDIA_DOWNLOAD_MAX_ATTEMPTS), not here:
# a retry lost with its worker is re-queued by the sweep and still counts.
@shared_task(bind=True, max_retries=None, acks_late=True)
def media_download_task(self: Task, media_id: int) -> str:  # type: ignore[type-arg]
    try:
        return media_download(media_id=media_id).status
    except Exception as exc:  # Graph 5xx/429/network, or the storage (S3) refusing the file
        logger.warning("download of media %s failed: %s: %s", media_id, type(exc).__name__, exc)
        retry_in = media_download_failed(media_id=media_id, error=f"{type(exc).__name__}: {exc}")
        if retry_in is None:
            return Media.Status.FAILED
        raise self.retry(exc=exc, countdown=retry_in) from exc


@shared_task
def media_download_sweep_task() -> int:
    """Queue the downloads of customers' files whose task was lost (runs per tenant)."""
    due = media_download_overdue()
    for media_id in due:
        enqueue_on_commit(media_download_task, media_id)  # outside a transaction: sent at once
    if due:
        logger.warning("re-queued the download of %d media files", len(due))
    return len(due)


@shared_task(bind=True, max_retries=4, acks_late=True)
def message_templates_sync_task(self: Task, account_id: int) -> dict[str, int]:  # type: ignore[type-arg]
    """Fetch one number's templates from Meta (the admin action queues this)."""
    account = WhatsAppAccount.objects.get(pk=account_id)
    try:
        report = message_templates_sync(account=account)
    except GraphApiError as exc:
        if exc.retryable:
            raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc
        raise
    return asdict(report)


@shared_task
def message_templates_refresh_task() -> int:
    """Refresh the templates of every number of this tenant (runs per tenant, periodically)."""
    synced = 0
    for account in message_templates_accounts():
        try:
            message_templates_sync(account=account)
            synced += 1
        except (GraphApiError, ApplicationError):  # one number's failure must not stop the others
            logger.exception("could not refresh the templates of number %s", account.pk)
    return synced
