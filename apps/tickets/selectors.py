"""Reads of tickets, SLA state and satisfaction, with the same visibility rule as conversations."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.accounts.selectors import user_has_capability
from apps.conversations.models import Conversation, ConversationEvent, Message
from apps.conversations.selectors import Viewer, viewer_can_see, viewer_for
from apps.tickets.exceptions import TicketNotFound
from apps.tickets.models import CLOCKS, CsatSurvey, SLAEvent, Ticket

NEGATIVE_SENTIMENT = -0.3
NEGATIVE_STREAK = 3


def ticket_visibility_q(*, user: User) -> Q | None:
    """The tickets a user may see; None means all (managers and admins).

    The conversations' rule on the ticket's assignee and team: managers see every ticket,
    agents their own and the unassigned ones of their teams (or of no team), and people
    without an inbox role (knowledge editors) none. `ticket_viewer_can_see` is the same rule
    for one event.
    """
    if user_has_capability(user=user, capability="view_all_conversations"):
        return None
    if not user_has_capability(user=user, capability="view_assigned_conversations"):
        return Q(pk__in=[])
    team_ids = list(user.teams.values_list("pk", flat=True))
    return Q(assignee=user) | (Q(assignee__isnull=True) & (Q(team__isnull=True) | Q(team_id__in=team_ids)))


def ticket_viewer_for(*, user: User) -> Viewer:
    """What one person may see of tickets, loaded once (a socket keeps it for a while)."""
    return viewer_for(user=user)


def ticket_viewer_may_use_queue(viewer: Viewer) -> bool:
    return viewer.sees_all or viewer.sees_assigned


def ticket_viewer_can_see(viewer: Viewer, *, assignee_id: int | None, team_id: int | None) -> bool:
    """`ticket_visibility_q` on one ticket's routing (a live event)."""
    return viewer_can_see(viewer, assigned_agent_id=assignee_id, team_id=team_id)


def ticket_list_for_user(
    *,
    user: User,
    status: str | None = None,
    priority: str | None = None,
    assignee_id: int | None = None,
    team_id: int | None = None,
    mine: bool = False,
    breached: bool | None = None,
    search: str | None = None,
    conversation_id: int | None = None,
) -> QuerySet[Ticket]:
    """The tickets a user may see, highest escalation risk first."""
    tickets = Ticket.objects.select_related("assignee", "team", "contact", "sla_policy").prefetch_related(
        "conversations"
    )
    visible = ticket_visibility_q(user=user)
    if visible is not None:
        tickets = tickets.filter(visible)
    if conversation_id is not None:
        tickets = tickets.filter(conversations=conversation_id)
    if status:
        tickets = tickets.filter(status=status)
    if priority:
        tickets = tickets.filter(priority=priority)
    if assignee_id is not None:
        tickets = tickets.filter(assignee_id=assignee_id)
    if team_id is not None:
        tickets = tickets.filter(team_id=team_id)
    if mine:
        tickets = tickets.filter(assignee=user)
    if breached is not None:
        tickets = tickets.filter(sla_breached=breached)
    if search:
        tickets = tickets.filter(Q(title__icontains=search) | Q(description__icontains=search))
    return tickets.order_by("-risk_score", "-created")


def ticket_get_for_user(*, user: User, ticket_id: int) -> Ticket:
    ticket = ticket_list_for_user(user=user).filter(pk=ticket_id).first()
    if ticket is None:
        raise TicketNotFound(_("No such ticket."), extra={"ticket": ticket_id})
    return ticket


def ticket_active_for_conversation(*, conversation_id: int) -> Ticket | None:
    return (
        Ticket.objects.filter(conversations__pk=conversation_id, status__in=Ticket.ACTIVE_STATUSES)
        .order_by("-created")
        .first()
    )


def ticket_latest_for_conversation(*, conversation_id: int) -> Ticket | None:
    return Ticket.objects.filter(conversations__pk=conversation_id).order_by("-created").first()


def ticket_customer_signals(*, ticket: Ticket) -> tuple[int, bool]:
    """(customer messages since the last answer, whether the latest ones are all negative)."""
    messages = Message.objects.filter(conversation__tickets=ticket).exclude(type="note")
    last_answer = (
        messages.filter(direction=Message.Direction.OUTBOUND, author_kind__in=["agent", "bot"])
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )
    inbound = messages.filter(direction=Message.Direction.INBOUND)
    unanswered = inbound.filter(sent_at__gt=last_answer) if last_answer else inbound
    latest = list(
        inbound.filter(sentiment__isnull=False)
        .order_by("-sent_at")
        .values_list("sentiment", flat=True)[:NEGATIVE_STREAK]
    )
    streak = len(latest) == NEGATIVE_STREAK and all(
        score is not None and score <= NEGATIVE_SENTIMENT for score in latest
    )
    return unanswered.count(), streak


def tickets_sla_check_due(*, now: datetime, limit: int = 1000) -> list[int]:
    """Running tickets that reached an at-risk or due time not recorded yet (the Beat sweep).

    "Recorded" is per clock run, as `ticket_sla_check` records: a due time a resume moved
    past `now` again is not a new breach of the same run.
    """
    reached = Q()
    for clock in CLOCKS:
        same_run = SLAEvent.objects.filter(
            ticket=OuterRef("pk"), metric=clock.metric, clock_started_at=OuterRef(clock.start_field)
        )
        breach_unrecorded = Q(**{f"{clock.due_field}__lte": now}) & ~Exists(
            same_run.filter(kind=SLAEvent.Kind.BREACHED)
        )
        risk_unrecorded = Q(**{f"{clock.risk_field}__lte": now, f"{clock.due_field}__gt": now}) & ~Exists(
            same_run.filter(kind=SLAEvent.Kind.AT_RISK)
        )
        reached |= breach_unrecorded | risk_unrecorded
    return list(
        Ticket.objects.filter(status__in=Ticket.ACTIVE_STATUSES, sla_paused_at__isnull=True)
        .filter(reached)
        .values_list("pk", flat=True)[:limit]
    )


def sla_event_list(*, since: datetime | None = None, until: datetime | None = None) -> QuerySet[SLAEvent]:
    events = SLAEvent.objects.select_related("ticket", "assignee", "team")
    if since is not None:
        events = events.filter(created__gte=since)
    if until is not None:
        events = events.filter(created__lt=until)
    return events


_PERIODS = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}


def csat_summary(
    *,
    group_by: str = "agent",
    period: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    team_id: int | None = None,
    agent_id: int | None = None,
    time_zone: tzinfo | None = None,
) -> list[dict[str, Any]]:
    """Answered satisfaction ratings per agent or team (and per day/week/month): average, count, share of 4-5."""
    surveys = CsatSurvey.objects.filter(score__isnull=False)
    if team_id is not None:
        surveys = surveys.filter(team_id=team_id)
    if agent_id is not None:
        surveys = surveys.filter(agent_id=agent_id)
    if since is not None:
        surveys = surveys.filter(answered_at__gte=since)
    if until is not None:
        surveys = surveys.filter(answered_at__lt=until)
    keys: list[str] = []
    if group_by == "agent":
        keys.append("agent")
    elif group_by == "team":
        keys.append("team")
    if period in _PERIODS:
        surveys = surveys.annotate(period=_PERIODS[period]("answered_at", tzinfo=time_zone))
        keys.append("period")
    rows = (
        surveys.values(*keys)
        .annotate(
            responses=Count("pk"),
            average=Avg("score"),
            satisfied=Count("pk", filter=Q(score__gte=4)),
        )
        .order_by(*keys)
    )
    return [
        {
            **{key: row[key] for key in keys},
            "responses": row["responses"],
            "average": round(float(row["average"]), 2),
            "csat_percent": round(100 * row["satisfied"] / row["responses"], 1),
        }
        for row in rows
    ]


def handoffs_without_ticket(
    *, now: datetime, grace: timedelta, lookback: timedelta = timedelta(days=7), limit: int = 200
) -> list[tuple[int, str]]:
    """Hand-offs whose ticket is missing: (conversation id, reason), oldest first, one per conversation.

    A hand-off is covered by a ticket of its conversation that is still open or was opened
    after it. Only conversations still with people count: once resolved, people dealt with it.
    `grace` leaves the hand-off's own ticket creation time to finish.
    """
    covered = Ticket.objects.filter(conversations=OuterRef("conversation_id")).filter(
        Q(status__in=Ticket.ACTIVE_STATUSES) | Q(created__gte=OuterRef("created"))
    )
    events = (
        ConversationEvent.objects.filter(
            kind=ConversationEvent.Kind.HANDOFF,
            created__gte=now - lookback,
            created__lte=now - grace,
            conversation__status__in=[Conversation.Status.WAITING, Conversation.Status.ASSIGNED],
        )
        .filter(~Exists(covered))
        .order_by("created", "pk")
        .values_list("conversation_id", "reason")[: limit * 4]
    )
    missing: dict[int, str] = {}
    for conversation_id, reason in events:
        missing[conversation_id] = reason  # the latest hand-off's reason wins
    return list(missing.items())[:limit]


def ticket_conversation_ids(ticket: Ticket) -> list[int]:
    """The conversations a ticket is linked to: the inbox forwards a ticket's events only to
    the agents who have one of them open (its ticket panel is all that uses them)."""
    return sorted(ticket.conversations.values_list("pk", flat=True))
