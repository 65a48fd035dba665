"""The escalation risk score (0-100) and the human-readable factors behind it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.realtime import event_publish
from apps.tickets.models import CLOCKS, Priority, Ticket
from apps.tickets.selectors import ticket_conversation_ids, ticket_customer_signals

SLA_SOON = timedelta(minutes=30)
FOLLOW_UPS = 4
STALE_AFTER = timedelta(hours=8)

POINTS_SLA = 40
POINTS_URGENT = 25
POINTS_FRUSTRATION = 15
POINTS_NEGATIVE = 15
POINTS_STALE = 10


@dataclass(frozen=True)
class RiskInputs:
    now: datetime
    next_due_at: datetime | None  # the nearest running SLA due time
    priority: str
    unanswered_follow_ups: int  # customer messages since the last answer
    negative_streak: bool  # the customer's latest messages are all negative
    last_activity_at: datetime


def _minutes(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds() / 60))


def risk_score_compute(inputs: RiskInputs) -> tuple[int, list[dict[str, Any]]]:
    """The score (capped at 100) and its factors, each with its points and a reason."""
    factors: list[dict[str, Any]] = []

    def add(factor: str, points: int, reason: str, **params: int) -> None:
        # The params let a page word the reason again in its reader's language.
        factors.append({"factor": factor, "points": points, "reason": f"{reason} (+{points})", "params": params})

    if inputs.next_due_at is not None and inputs.next_due_at - inputs.now <= SLA_SOON:
        if inputs.next_due_at > inputs.now:
            minutes = _minutes(inputs.next_due_at - inputs.now)
            reason = _("SLA due in %(minutes)d min") % {"minutes": minutes}
        else:
            minutes = -_minutes(inputs.now - inputs.next_due_at)
            reason = _("SLA breached %(minutes)d min ago") % {"minutes": -minutes}
        add("sla", POINTS_SLA, reason, minutes=minutes)
    if inputs.priority == Priority.URGENT:
        add("urgent", POINTS_URGENT, _("Urgent priority"))
    if inputs.unanswered_follow_ups >= FOLLOW_UPS:
        add(
            "frustration",
            POINTS_FRUSTRATION,
            _("%(count)d customer messages without an answer") % {"count": inputs.unanswered_follow_ups},
            count=inputs.unanswered_follow_ups,
        )
    if inputs.negative_streak:
        add("negative_sentiment", POINTS_NEGATIVE, _("Negative sentiment streak"))
    idle = inputs.now - inputs.last_activity_at
    if idle >= STALE_AFTER:
        hours = int(idle.total_seconds() // 3600)
        add("stale", POINTS_STALE, _("No update for %(hours)d h") % {"hours": hours}, hours=hours)
    return min(100, sum(factor["points"] for factor in factors)), factors


def _next_due(ticket: Ticket) -> datetime | None:
    if ticket.sla_paused_at is not None or ticket.status not in Ticket.ACTIVE_STATUSES:
        return None
    dues = [getattr(ticket, clock.due_field) for clock in CLOCKS]
    return min((due for due in dues if due is not None), default=None)


def ticket_risk_refresh(*, ticket: Ticket, now: datetime | None = None) -> Ticket:
    """Recompute and store the ticket's risk; tell the sockets when the score moves."""
    now = now or timezone.now()
    if ticket.status in Ticket.ACTIVE_STATUSES:
        follow_ups, negative_streak = ticket_customer_signals(ticket=ticket)
        score, factors = risk_score_compute(
            RiskInputs(
                now=now,
                next_due_at=_next_due(ticket),
                priority=ticket.priority,
                unanswered_follow_ups=follow_ups,
                negative_streak=negative_streak,
                last_activity_at=ticket.last_activity_at or ticket.created,
            )
        )
    else:
        score, factors = 0, []
    changed = score != ticket.risk_score or factors != ticket.risk_factors
    # .update(): a risk refresh is not an activity, and must not bump `updated`.
    Ticket.objects.filter(pk=ticket.pk).update(risk_score=score, risk_factors=factors, risk_computed_at=now)
    ticket.risk_score, ticket.risk_factors, ticket.risk_computed_at = score, factors, now
    if changed:
        event_publish(
            event_type="ticket.risk",
            data={
                "ticket": ticket.pk,
                "risk_score": score,
                "factors": factors,
                # Routing: the sockets forward it only to people who may see the ticket.
                "assignee": ticket.assignee_id,
                "team": ticket.team_id,
                "conversations": ticket_conversation_ids(ticket),
            },
        )
    return ticket


def tickets_risk_refresh_all(*, limit: int = 2000) -> int:
    """Recompute every active ticket's risk (Beat): time alone moves SLA and staleness."""
    tickets = Ticket.objects.filter(status__in=Ticket.ACTIVE_STATUSES).order_by("pk")[:limit]
    count = 0
    for ticket in tickets:
        ticket_risk_refresh(ticket=ticket)
        count += 1
    return count
