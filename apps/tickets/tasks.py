from __future__ import annotations

import logging

from celery import Task, shared_task
from django.utils import timezone

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=3, acks_late=True)
def ticket_sla_check_task(self: Task, ticket_id: int) -> int:  # type: ignore[type-arg]
    """The precise check queued for an at-risk or due time (idempotent)."""
    from apps.tickets.services.sla import ticket_sla_check

    try:
        return len(ticket_sla_check(ticket_id=ticket_id))
    except Exception as exc:  # the sweep would find it too; retry sooner
        logger.exception("SLA check of ticket %s failed", ticket_id)
        raise self.retry(exc=exc, countdown=5 * (self.request.retries + 1)) from exc


@shared_task
def tickets_sla_sweep_task() -> int:
    """Record every reached at-risk or due time whose precise task was lost (Beat, per tenant)."""
    from apps.tickets.selectors import tickets_sla_check_due
    from apps.tickets.services.sla import ticket_sla_check

    now = timezone.now()
    recorded = 0
    for ticket_id in tickets_sla_check_due(now=now):
        recorded += len(ticket_sla_check(ticket_id=ticket_id, now=now))
    return recorded


@shared_task
def tickets_risk_refresh_task() -> int:
    """Recompute the escalation risk of active tickets: time alone moves it (Beat, per tenant)."""
    from apps.tickets.services.risk import tickets_risk_refresh_all

    return tickets_risk_refresh_all()


@shared_task(bind=True, max_retries=6, acks_late=True)
def ticket_create_for_handoff_task(self: Task, conversation_id: int, reason: str) -> int | None:  # type: ignore[type-arg]
    """Retry a hand-off's ticket that failed when the hand-off happened (idempotent)."""
    from django.conf import settings

    from apps.tickets.services.tickets import ticket_create_for_handoff

    try:
        ticket = ticket_create_for_handoff(conversation_id=conversation_id, reason=reason)
    except Exception as exc:  # after the last retry the Beat sweep keeps trying
        logger.warning("the ticket of the hand-off of conversation %s failed again", conversation_id, exc_info=True)
        countdown = settings.TICKET_HANDOFF_RETRY_SECONDS * 2**self.request.retries
        raise self.retry(exc=exc, countdown=countdown) from exc
    return ticket.pk if ticket is not None else None


@shared_task(bind=True, max_retries=3, acks_late=True)
def ticket_text_write_task(
    self: Task,  # type: ignore[type-arg]
    ticket_id: int,
    conversation_id: int,
    reason: str,
    title: str,
    description: str,
) -> list[str]:
    """Have the provider write the title and description of a ticket opened with extractive ones."""
    from apps.tickets.services.tickets import ticket_text_write

    try:
        return ticket_text_write(
            ticket_id=ticket_id, conversation_id=conversation_id, reason=reason, title=title, description=description
        )
    except Exception as exc:  # the router never raises: a database error; the extractive text stands meanwhile
        logger.warning("writing the text of ticket %s failed", ticket_id, exc_info=True)
        raise self.retry(exc=exc, countdown=10 * 2**self.request.retries) from exc


@shared_task
def tickets_handoff_sweep_task() -> int:
    """Open the tickets that hand-offs should have opened (Beat, per tenant)."""
    from apps.tickets.services.tickets import tickets_create_for_missed_handoffs

    return len(tickets_create_for_missed_handoffs())
