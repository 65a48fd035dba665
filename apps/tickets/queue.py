"""Reads for the managers' live ticket queue: open tickets by risk, the next SLA target, reasons in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F, QuerySet
from django.db.models.functions import Least
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.tickets.models import CLOCKS, SLAEvent, Ticket
from apps.tickets.selectors import ticket_list_for_user

QUEUE_LIMIT = 200


@dataclass(frozen=True)
class SlaTarget:
    """The nearest running SLA clock of a ticket."""

    metric: str
    label: str
    due_at: datetime
    paused: bool
    # Paused: how much of the clock was left when it stopped (negative when already overdue).
    remaining_at_pause_seconds: float | None

    @property
    def due_iso(self) -> str:
        return self.due_at.isoformat()


@dataclass(frozen=True)
class QueueRow:
    ticket: Ticket
    target: SlaTarget | None
    reasons: list[str]
    conversation_id: int | None

    @property
    def risk_level(self) -> str:
        score = self.ticket.risk_score
        return "high" if score >= 60 else "medium" if score >= 30 else "low"


def ticket_queue_for_user(
    *, user: User, mine: bool = False, team_id: int | None = None, priority: str | None = None
) -> QuerySet[Ticket]:
    """The open tickets a user may see, highest risk first, then the nearest SLA due time."""
    tickets = ticket_list_for_user(user=user, mine=mine, team_id=team_id, priority=priority).filter(
        status__in=Ticket.ACTIVE_STATUSES
    )
    return tickets.annotate(
        next_due=Least("first_response_due_at", "next_response_due_at", "resolution_due_at")
    ).order_by("-risk_score", F("next_due").asc(nulls_last=True), "-created")


def sla_next_target(ticket: Ticket) -> SlaTarget | None:
    """The clock that falls due first; while paused, the one that would have."""
    labels = dict(SLAEvent.Metric.choices)
    running = [(getattr(ticket, clock.due_field), clock.metric) for clock in CLOCKS]
    due = [(at, metric) for at, metric in running if at is not None]
    if not due or ticket.status not in Ticket.ACTIVE_STATUSES:
        return None
    due_at, metric = min(due)
    paused_at = ticket.sla_paused_at
    return SlaTarget(
        metric=metric,
        label=str(labels[metric]),
        due_at=due_at,
        paused=paused_at is not None,
        remaining_at_pause_seconds=(due_at - paused_at).total_seconds() if paused_at is not None else None,
    )


def _minutes_between(later: datetime, earlier: datetime) -> int:
    # Whole minutes, as the page's countdown shows them ("12 min 40 s" is "12 min").
    return max(0, int((later - earlier).total_seconds() // 60))


def risk_factor_words(factor: dict[str, Any], *, target: SlaTarget | None, now: datetime) -> str:
    """One stored risk factor in the reader's language, e.g. "SLA due in 12 min (+40)"."""
    kind = factor.get("factor")
    stored = factor.get("params")
    params: dict[str, Any] = stored if isinstance(stored, dict) else {}
    points = int(factor.get("points", 0))
    text: str
    if kind == "sla":
        if target is not None and not target.paused:
            # Worded from the live due time: the stored minutes age between refreshes.
            if target.due_at > now:
                text = _("SLA due in %(minutes)d min") % {"minutes": _minutes_between(target.due_at, now)}
            else:
                text = _("SLA breached %(minutes)d min ago") % {"minutes": _minutes_between(now, target.due_at)}
        else:
            return str(factor.get("reason", ""))
    elif kind == "urgent":
        text = _("Urgent priority")
    elif kind == "frustration" and "count" in params:
        text = _("%(count)d customer messages without an answer") % {"count": int(params["count"])}
    elif kind == "negative_sentiment":
        text = _("Negative sentiment streak")
    elif kind == "stale" and "hours" in params:
        text = _("No update for %(hours)d h") % {"hours": int(params["hours"])}
    else:
        return str(factor.get("reason", ""))
    return f"{text} (+{points})"


def ticket_queue_rows(
    *,
    user: User,
    mine: bool = False,
    team_id: int | None = None,
    priority: str | None = None,
    now: datetime | None = None,
    limit: int | None = None,
) -> list[QueueRow]:
    """The queue as the page shows it: each ticket with its next SLA target and its reasons in words.

    At most `limit` tickets (QUEUE_LIMIT), the most urgent; `ticket_queue_total` counts them all.
    """
    now = now or timezone.now()
    rows: list[QueueRow] = []
    tickets = ticket_queue_for_user(user=user, mine=mine, team_id=team_id, priority=priority)
    for ticket in tickets[: QUEUE_LIMIT if limit is None else limit]:
        target = sla_next_target(ticket)
        factors = ticket.risk_factors if isinstance(ticket.risk_factors, list) else []
        reasons = [risk_factor_words(factor, target=target, now=now) for factor in factors if isinstance(factor, dict)]
        conversations = sorted(ticket.conversations.all(), key=lambda c: c.last_message_at or c.created, reverse=True)
        rows.append(
            QueueRow(
                ticket=ticket,
                target=target,
                reasons=[reason for reason in reasons if reason],
                conversation_id=conversations[0].pk if conversations else None,
            )
        )
    return rows


def ticket_queue_total(
    *, user: User, shown: int, mine: bool = False, team_id: int | None = None, priority: str | None = None
) -> int:
    """How many tickets the queue holds: `shown` when the page shows them all, else one count query."""
    if shown < QUEUE_LIMIT:
        return shown
    return ticket_queue_for_user(user=user, mine=mine, team_id=team_id, priority=priority).order_by().count()
