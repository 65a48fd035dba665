"""The SLA report: per-period ticket counts, targets met and breached, and satisfaction.

Tickets are counted in the period they were opened (a cohort), in the organisation's time
zone. "Breached" comes from the recorded SLA events (`SLAEvent`), the same rows the live
warnings came from; "met" is a ticket under a policy that reached the target without a
breach. Merged duplicates are left out: their conversations count in the ticket they joined.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Exists, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, TruncDay, TruncMonth, TruncWeek

from apps.tenants.selectors import organization_zone
from apps.tickets.business_hours import Schedule, business_seconds_between
from apps.tickets.models import BusinessCalendar, SLAEvent, Ticket
from apps.tickets.selectors import csat_summary
from apps.tickets.services.sla import sla_schedule

PERIODS = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
MAX_RANGE_DAYS = 366
# No ticket predates these; the bounds keep the report's day arithmetic (the default start,
# the day after the end, weeks and months rounded outwards) inside Python's calendar.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(9998, 12, 31)


@dataclass
class _Bucket:
    tickets: int = 0
    without_sla: int = 0
    first_response_met: int = 0
    first_response_breached: int = 0
    first_response_open: int = 0
    next_response_breached: int = 0
    resolution_met: int = 0
    resolution_breached: int = 0
    resolution_open: int = 0
    at_risk_warnings: int = 0
    first_response_seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        seconds = self.first_response_seconds
        return {
            "tickets": self.tickets,
            "without_sla": self.without_sla,
            "first_response": {
                "met": self.first_response_met,
                "breached": self.first_response_breached,
                "open": self.first_response_open,
            },
            "next_response": {"breached": self.next_response_breached},
            "resolution": {
                "met": self.resolution_met,
                "breached": self.resolution_breached,
                "open": self.resolution_open,
            },
            "at_risk_warnings": self.at_risk_warnings,
            "median_first_response_business_seconds": round(statistics.median(seconds)) if seconds else None,
        }


def _breached(metric: str) -> Exists:
    return Exists(SLAEvent.objects.filter(ticket=OuterRef("pk"), metric=metric, kind=SLAEvent.Kind.BREACHED))


def sla_report(
    *,
    since: date,
    until: date,
    period: str = "day",
    team_id: int | None = None,
    agent_id: int | None = None,
) -> dict[str, Any]:
    """Tickets opened from `since` to `until` (both included, organisation time zone), per period."""
    zone = organization_zone()
    start = datetime.combine(since, time(0), tzinfo=zone)
    end = datetime.combine(until + timedelta(days=1), time(0), tzinfo=zone)
    at_risk = (
        SLAEvent.objects.filter(ticket=OuterRef("pk"), kind=SLAEvent.Kind.AT_RISK)
        .order_by()
        .values("ticket")
        .annotate(count=Count("pk"))
        .values("count")
    )
    tickets = Ticket.objects.filter(created__gte=start, created__lt=end, merged_into__isnull=True)
    if team_id is not None:
        tickets = tickets.filter(team_id=team_id)
    if agent_id is not None:
        tickets = tickets.filter(assignee_id=agent_id)
    rows = (
        tickets.annotate(
            bucket=PERIODS[period]("created", tzinfo=zone),
            first_breached=_breached(SLAEvent.Metric.FIRST_RESPONSE),
            next_breached=_breached(SLAEvent.Metric.NEXT_RESPONSE),
            resolution_breached=_breached(SLAEvent.Metric.RESOLUTION),
            warnings=Coalesce(Subquery(at_risk, output_field=IntegerField()), Value(0)),
        )
        .values(
            "bucket",
            "created",
            "first_responded_at",
            "first_response_paused_seconds",
            "solved_at",
            "closed_at",
            "sla_policy_id",
            "sla_policy__calendar_id",
            "first_breached",
            "next_breached",
            "resolution_breached",
            "warnings",
        )
        .order_by("bucket")
    )
    schedules: dict[int | None, Schedule] = {None: Schedule.always()}
    buckets: dict[datetime, _Bucket] = {}
    total = _Bucket()
    for row in rows:
        calendar_id = row["sla_policy__calendar_id"]
        if calendar_id not in schedules:
            schedules[calendar_id] = sla_schedule(BusinessCalendar.objects.get(pk=calendar_id))
        for bucket in (buckets.setdefault(row["bucket"], _Bucket()), total):
            _count(bucket, row, schedules[calendar_id])

    def csat(group_by: str, by_period: str | None = None) -> list[dict[str, Any]]:
        return csat_summary(
            group_by=group_by,
            period=by_period,
            since=start,
            until=end,
            team_id=team_id,
            agent_id=agent_id,
            time_zone=zone,
        )

    return {
        "from": since.isoformat(),
        "to": until.isoformat(),
        "period": period,
        "time_zone": str(zone),
        "team": team_id,
        "agent": agent_id,
        "periods": [
            {"period": moment.date().isoformat(), **bucket.as_dict()} for moment, bucket in sorted(buckets.items())
        ],
        "totals": total.as_dict(),
        "csat": {
            "by_agent": csat("agent"),
            "by_team": csat("team"),
            "by_period": [{**row, "period": row["period"].date().isoformat()} for row in csat("none", period)],
        },
    }


def _count(bucket: _Bucket, row: dict[str, Any], schedule: Schedule) -> None:
    bucket.tickets += 1
    bucket.at_risk_warnings += row["warnings"]
    bucket.next_response_breached += bool(row["next_breached"])
    if row["first_responded_at"] is not None:
        seconds = business_seconds_between(schedule, row["created"], row["first_responded_at"])
        bucket.first_response_seconds.append(max(0.0, seconds - row["first_response_paused_seconds"]))
    if row["first_breached"]:
        bucket.first_response_breached += 1
    if row["resolution_breached"]:
        bucket.resolution_breached += 1
    if row["sla_policy_id"] is None:
        bucket.without_sla += 1
        return
    if not row["first_breached"]:
        if row["first_responded_at"] is not None:
            bucket.first_response_met += 1
        else:
            bucket.first_response_open += 1
    if not row["resolution_breached"]:
        if row["solved_at"] is not None or row["closed_at"] is not None:
            bucket.resolution_met += 1
        else:
            bucket.resolution_open += 1
