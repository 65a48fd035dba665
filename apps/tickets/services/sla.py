"""SLA clocks: due times in business time, pause and resume, at-risk and breach detection.

A ticket has up to three clocks, each with a due time and an "at risk" time (80% of the
target used): first response (from creation to the first agent reply), next response
(from a customer message to the agent's answer) and resolution (from creation to solved).
While the ticket is pending on the customer or on hold the clocks stop: the business time
spent paused since a clock started is added to its target when the ticket resumes.

Detection is twofold: a Celery task queued with a countdown to each at-risk and due time
(precise), and a Beat sweep every minute (safety net for lost tasks, far-away due times
and restarts). Both end in `ticket_sla_check`, which records each event once per clock
run: a resume moves a due time, but a clock that breached before the pause stays breached
and is not breached (nor notified) again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, tzinfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.queue import enqueue_on_commit
from apps.core.realtime import event_publish
from apps.tenants.selectors import organization_zone, zone_named
from apps.tickets.business_hours import Schedule, ScheduleEmpty, business_add, business_seconds_between
from apps.tickets.models import CLOCKS, BusinessCalendar, SLAEvent, SLAPolicy, Ticket, TicketEvent
from apps.tickets.selectors import ticket_conversation_ids

logger = logging.getLogger(__name__)

AT_RISK_SHARE = 0.8
Metric = SLAEvent.Metric
SLA_FIELDS = [
    "sla_policy",
    "sla_paused_at",
    "sla_paused_seconds",
    "next_response_paused_offset",
    *(clock.due_field for clock in CLOCKS),
    *(clock.risk_field for clock in CLOCKS),
]


def calendar_time_zone(calendar: BusinessCalendar) -> tzinfo:
    """The calendar's zone; the organisation's when it has none or one `ZoneInfo` cannot read.

    The admin refuses unknown names, but a row saved before that check (or by a script) may
    hold one: every inbound message and ticket change reads the calendar, so a bad name is
    logged and the organisation's zone used rather than failing them all.
    """
    if not calendar.time_zone:
        return organization_zone()
    zone = zone_named(calendar.time_zone)
    if zone is None:
        logger.warning(
            "business calendar %s has an unknown time zone %r; using the organisation's",
            calendar.pk,
            calendar.time_zone,
        )
        return organization_zone()
    return zone


def calendar_schedule(calendar: BusinessCalendar | None) -> Schedule:
    """The calendar's schedule in its time zone (or the organisation's); around the clock without one."""
    if calendar is None:
        return Schedule.always()
    periods: dict[int, list[tuple[int, int]]] = {}
    for period in calendar.periods.all():
        start = period.start.hour * 60 + period.start.minute
        end = period.end.hour * 60 + period.end.minute or 24 * 60
        periods.setdefault(period.weekday, []).append((start, end))
    holidays = frozenset(calendar.holidays.values_list("date", flat=True))
    return Schedule(tz=calendar_time_zone(calendar), periods=periods, holidays=holidays)


def sla_schedule(calendar: BusinessCalendar | None) -> Schedule:
    """The schedule an SLA clock counts in: a calendar without hours counts around the clock.

    A clock in a calendar with no periods would never come due (`ScheduleEmpty`), failing
    every ticket under its policy, hand-offs' tickets included; around the clock is the
    reading that keeps the promise rather than suspending it.
    """
    schedule = calendar_schedule(calendar)
    if calendar is not None and not any(schedule.periods.values()):
        logger.warning("business calendar %s has no hours; its SLA clocks run around the clock", calendar.pk)
        return Schedule.always()
    return schedule


def sla_policy_for(ticket: Ticket) -> SLAPolicy | None:
    """The active policy for the ticket's priority; one for its team and/or a tag of it wins."""
    candidates = (
        SLAPolicy.objects.select_related("calendar")
        .filter(is_active=True, priority=ticket.priority)
        .filter(Q(team__isnull=True) | Q(team_id=ticket.team_id))
        .filter(Q(tag="") | Q(tag__in=ticket.tags or []))
    )

    def specificity(policy: SLAPolicy) -> tuple[int, int, int]:
        return (policy.team_id is not None, policy.tag != "", -policy.pk)

    return max(candidates, key=specificity, default=None)


def _clock_times(
    schedule: Schedule, start: datetime, target_seconds: float, extra_seconds: float = 0
) -> tuple[datetime, datetime]:
    try:
        due = business_add(schedule, start, target_seconds + extra_seconds)
        risk = business_add(schedule, start, target_seconds * AT_RISK_SHARE + extra_seconds)
    except ScheduleEmpty:  # hours exist but none ahead (holidays for years): never fail the ticket
        logger.warning("no business time ahead of %s; the SLA clock runs around the clock", start.isoformat())
        return _clock_times(Schedule.always(), start, target_seconds, extra_seconds)
    return due, risk


def sla_apply(*, ticket: Ticket) -> None:
    """Recompute the ticket's policy and due times from their starts (caller saves SLA_FIELDS)."""
    policy = sla_policy_for(ticket)
    ticket.sla_policy = policy
    for clock in CLOCKS:
        setattr(ticket, clock.due_field, None)
        setattr(ticket, clock.risk_field, None)
    if policy is None or ticket.status not in Ticket.ACTIVE_STATUSES:
        return
    schedule = sla_schedule(policy.calendar)
    paused = ticket.sla_paused_seconds
    if ticket.first_responded_at is None:
        ticket.first_response_due_at, ticket.first_response_risk_at = _clock_times(
            schedule, ticket.created, policy.first_response_minutes * 60, paused
        )
    if ticket.next_response_started_at is not None and policy.next_response_minutes:
        # Only the pauses since the customer wrote; negative while a pause the message came in
        # is still running (the ticket is then paused and resuming recomputes this).
        paused_since_start = max(0.0, paused - ticket.next_response_paused_offset)
        ticket.next_response_due_at, ticket.next_response_risk_at = _clock_times(
            schedule, ticket.next_response_started_at, policy.next_response_minutes * 60, paused_since_start
        )
    ticket.resolution_due_at, ticket.resolution_risk_at = _clock_times(
        schedule, ticket.created, policy.resolution_minutes * 60, paused
    )


def sla_pause(*, ticket: Ticket, now: datetime) -> None:
    if ticket.sla_paused_at is None:
        ticket.sla_paused_at = now


def sla_paused_seconds_until(*, ticket: Ticket, moment: datetime) -> float:
    """Business seconds the ticket's clocks were paused up to `moment`, the running pause included."""
    if ticket.sla_paused_at is None:
        return ticket.sla_paused_seconds
    schedule = sla_schedule(ticket.sla_policy.calendar if ticket.sla_policy else None)
    return ticket.sla_paused_seconds + max(0.0, business_seconds_between(schedule, ticket.sla_paused_at, moment))


def sla_next_response_start(*, ticket: Ticket, at: datetime) -> None:
    """Start the next-response clock at `at` (a customer message), paused or not.

    A message during a hold starts the clock but it runs only from the resume: the business
    time paused until then is in `sla_paused_seconds` at the resume, and the offset taken
    here (the pause up to the message included) leaves out only what came before the message.
    """
    ticket.next_response_started_at = at
    ticket.next_response_paused_offset = sla_paused_seconds_until(ticket=ticket, moment=at)


def sla_resume(*, ticket: Ticket, now: datetime) -> None:
    """Add the business time spent paused, then recompute the due times."""
    if ticket.sla_paused_at is None:
        return
    ticket.sla_paused_seconds = sla_paused_seconds_until(ticket=ticket, moment=now)
    ticket.sla_paused_at = None
    sla_apply(ticket=ticket)


def sla_checks_schedule(*, ticket: Ticket) -> None:
    """Queue a precise check at each coming at-risk and due time (after the commit).

    Only times within SLA_ETA_HORIZON_SECONDS get a task: a countdown task waits in the
    broker, and Redis redelivers unacknowledged tasks after its visibility timeout (1 h).
    The Beat sweep finds the later ones.
    """
    if ticket.sla_paused_at is not None or ticket.status not in Ticket.ACTIVE_STATUSES:
        return
    from apps.tickets.tasks import ticket_sla_check_task

    now = timezone.now()
    horizon = now + timedelta(seconds=settings.SLA_ETA_HORIZON_SECONDS)
    moments = {
        moment
        for clock in CLOCKS
        for moment in (getattr(ticket, clock.risk_field), getattr(ticket, clock.due_field))
        if moment is not None and now < moment <= horizon
    }
    for moment in sorted(moments):
        # A little after the moment, so the check sees it as reached.
        enqueue_on_commit(ticket_sla_check_task, ticket.pk, countdown=(moment - now).total_seconds() + 0.5)


@transaction.atomic
def ticket_sla_check(*, ticket_id: int, now: datetime | None = None) -> list[SLAEvent]:
    """Record the at-risk and breach events the ticket has reached; each once per clock run."""
    now = now or timezone.now()
    ticket = Ticket.objects.select_for_update().filter(pk=ticket_id).first()
    if ticket is None or ticket.sla_paused_at is not None or ticket.status not in Ticket.ACTIVE_STATUSES:
        return []
    recorded: list[SLAEvent] = []
    for clock in CLOCKS:
        due: datetime | None = getattr(ticket, clock.due_field)
        risk: datetime | None = getattr(ticket, clock.risk_field)
        started: datetime | None = getattr(ticket, clock.start_field)
        if due is None or started is None:
            continue
        kind = (
            SLAEvent.Kind.BREACHED
            if now >= due
            else SLAEvent.Kind.AT_RISK
            if risk is not None and now >= risk
            else None
        )
        if (
            kind is None
            or SLAEvent.objects.filter(ticket=ticket, metric=clock.metric, kind=kind, clock_started_at=started).exists()
        ):
            continue
        try:
            with transaction.atomic():
                event = SLAEvent.objects.create(
                    ticket=ticket,
                    metric=clock.metric,
                    kind=kind,
                    due_at=due,
                    clock_started_at=started,
                    priority=ticket.priority,
                    assignee=ticket.assignee,
                    team=ticket.team,
                )
        except IntegrityError:  # recorded by a concurrent check
            continue
        recorded.append(event)
        TicketEvent.objects.create(
            ticket=ticket,
            kind=TicketEvent.Kind.SLA,
            changes={"metric": clock.metric, "kind": kind, "due_at": due.isoformat()},
        )
        payload = {
            "ticket": ticket.pk,
            "metric": clock.metric,
            "kind": kind,
            "due_at": due.isoformat(),
            "priority": ticket.priority,
            "assignee": ticket.assignee_id,
            "team": ticket.team_id,
            "conversations": ticket_conversation_ids(ticket),
        }
        event_publish(event_type=f"ticket.sla_{kind}", data=payload)
        if ticket.assignee_id is not None:
            event_publish(event_type=f"ticket.sla_{kind}", data=payload, user_id=ticket.assignee_id)
    if any(event.kind == SLAEvent.Kind.BREACHED for event in recorded) and not ticket.sla_breached:
        Ticket.objects.filter(pk=ticket.pk).update(sla_breached=True)
    if recorded:
        from apps.tickets.services.risk import ticket_risk_refresh

        ticket_risk_refresh(ticket=ticket, now=now)
    return recorded
