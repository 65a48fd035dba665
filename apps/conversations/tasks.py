from __future__ import annotations

import logging
from datetime import timedelta

from celery import Task, shared_task

from apps.conversations.analysis import message_analyse, messages_unanalysed
from apps.core.exceptions import RetryLater
from apps.core.queue import enqueue_on_commit

logger = logging.getLogger(__name__)
# Retries of a message whose conversation is busy: 1, 2, 4 … 30 s apart, about 13 minutes in
# all, well beyond a flow run's claim lease (2 minutes) after a worker dies mid-walk.
AUTOMATION_BUSY_RETRIES = 30


@shared_task(bind=True, max_retries=5, acks_late=True)
def message_analyse_task(self: Task, message_id: int) -> str:  # type: ignore[type-arg]
    try:
        message = message_analyse(message_id=message_id)
    except Exception as exc:  # the message is stored; its analysis is retried, then swept
        logger.exception("analysis of message %s failed", message_id)
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 2)) from exc
    return "analysed" if message is not None else "skipped"


@shared_task
def message_analysis_sweep_task() -> int:
    """Queue the analysis of inbound messages whose task was lost (runs per tenant)."""
    due = messages_unanalysed(older_than=timedelta(minutes=2))
    for message_id in due:
        enqueue_on_commit(message_analyse_task, message_id)  # outside a transaction: sent at once
    if due:
        logger.warning("re-queued the analysis of %d messages", len(due))
    return len(due)


@shared_task
def assignment_queue_drain_task() -> int:
    """Assign waiting conversations to agents with room (runs per tenant)."""
    from apps.conversations.assignment import assignment_queue_drain

    return assignment_queue_drain()


@shared_task
def conversations_unsnooze_due_task() -> int:
    from apps.conversations.lifecycle import conversations_unsnooze_due

    return conversations_unsnooze_due()


@shared_task(bind=True, max_retries=5, acks_late=True)
def message_automation_task(self: Task, message_id: int) -> str:  # type: ignore[type-arg]
    """Run what higher apps registered for an analysed message (the bot's answer, rules, flows)."""
    from apps.conversations.hooks import after_analysis_handlers
    from apps.conversations.models import Message

    message = (
        Message.objects.select_related("conversation", "conversation__contact", "conversation__account")
        .filter(pk=message_id)
        .first()
    )
    if message is None:
        return "missing"
    if not message.conversation.account.is_active:
        # A number switched off: agents still see the message, the bot does not answer it
        # (its reply would only wait in the outbox and reach the customer late).
        return "number_inactive"
    try:
        for handler in after_analysis_handlers():
            handler(message)
    except RetryLater as exc:
        # Another event of the conversation is being handled (a flow walking an earlier message):
        # come back soon, for longer than that work's lease, so the message is never dropped.
        logger.info("automation of message %s deferred: %s", message_id, exc.message)
        countdown = min(2 ** min(self.request.retries, 5), 30)
        raise self.retry(exc=exc, countdown=countdown, max_retries=AUTOMATION_BUSY_RETRIES) from exc
    except Exception as exc:  # handlers are idempotent: the retry runs them again
        logger.exception("automation of message %s failed", message_id)
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 2)) from exc
    return "done"
