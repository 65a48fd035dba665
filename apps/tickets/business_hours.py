"""Business-time arithmetic over a weekly schedule, holidays and a time zone.

An instant counts as business time when its local wall-clock time (in the calendar's zone)
falls inside one of the periods of its weekday, and its local date is not a holiday. This
definition is exact across DST changes: a period 01:00-03:00 on a spring-forward night
lasts one hour, on a fall-back night three.

The computation never does arithmetic on local aware datetimes (Python subtracts those
as naive wall times): it splits UTC time into spans of constant UTC offset, maps each span
to the local wall clock, intersects it with the naive business periods there, and maps
the result back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

DAY_MINUTES = 24 * 60
# Offsets are sampled at this step when looking for DST transitions: real zones never
# change offset twice within it.
_OFFSET_STEP = timedelta(hours=3)
# How far ahead `business_add` looks before deciding a schedule has no business time.
_HORIZON = timedelta(days=800)
_WINDOW = timedelta(days=14)

Interval = tuple[datetime, datetime]


class ScheduleEmpty(ValueError):
    """The schedule has no business time within the search horizon."""


@dataclass(frozen=True)
class Schedule:
    """A weekly schedule (weekday 0 = Monday → periods in minutes from local midnight)."""

    tz: tzinfo
    periods: Mapping[int, Sequence[tuple[int, int]]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()

    @classmethod
    def always(cls) -> Schedule:
        """Around the clock, every day, no holidays (a policy without a calendar)."""
        return cls(tz=UTC, periods={day: [(0, DAY_MINUTES)] for day in range(7)})

    @classmethod
    def from_times(
        cls,
        tz_name: str,
        periods: Mapping[int, Sequence[tuple[time, time]]],
        holidays: frozenset[date] = frozenset(),
    ) -> Schedule:
        """Build from wall times; an end of 00:00 means midnight at the end of the day."""
        minutes: dict[int, list[tuple[int, int]]] = {}
        for day, spans in periods.items():
            for start, end in spans:
                start_minute = start.hour * 60 + start.minute
                end_minute = end.hour * 60 + end.minute or DAY_MINUTES
                minutes.setdefault(day, []).append((start_minute, end_minute))
        return cls(tz=ZoneInfo(tz_name), periods=minutes, holidays=holidays)

    def local_periods(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's business periods as merged naive wall-clock intervals."""
        if day in self.holidays:
            return []
        midnight = datetime.combine(day, time(0))
        spans = sorted(
            (max(0, start), min(DAY_MINUTES, end))
            for start, end in self.periods.get(day.weekday(), ())
            if min(DAY_MINUTES, end) > max(0, start)
        )
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return [(midnight + timedelta(minutes=s), midnight + timedelta(minutes=e)) for s, e in merged]


def _offset(tz: tzinfo, at: datetime) -> timedelta:
    offset = at.astimezone(tz).utcoffset()
    return offset if offset is not None else timedelta(0)


def _transition(tz: tzinfo, low: datetime, high: datetime) -> datetime:
    """The first second in (low, high] whose offset differs from low's (offsets differ at the ends)."""
    before = _offset(tz, low)
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(tz, datetime.fromtimestamp(mid, UTC)) == before:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, UTC)


def _constant_offset_spans(
    tz: tzinfo, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime, timedelta]]:
    """Split [start, end) (UTC) into spans of one UTC offset each."""
    cursor = start
    while cursor < end:
        offset = _offset(tz, cursor)
        probe = cursor
        span_end = end
        while probe < end:
            nxt = min(probe + _OFFSET_STEP, end)
            if _offset(tz, nxt) != offset:
                span_end = _transition(tz, probe, nxt)
                break
            probe = nxt
        yield cursor, span_end, offset
        cursor = span_end


def business_intervals(schedule: Schedule, start: datetime, end: datetime) -> Iterator[Interval]:
    """The business intervals within [start, end), as UTC datetimes, in order."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    for span_start, span_end, offset in _constant_offset_spans(schedule.tz, start, end):
        # Within a span, local wall time = UTC + offset: a straight line we can intersect.
        wall_start = span_start.replace(tzinfo=None) + offset
        wall_end = span_end.replace(tzinfo=None) + offset
        day = wall_start.date()
        while day <= wall_end.date():
            for period_start, period_end in schedule.local_periods(day):
                lo, hi = max(period_start, wall_start), min(period_end, wall_end)
                if hi > lo:
                    yield (lo - offset).replace(tzinfo=UTC), (hi - offset).replace(tzinfo=UTC)
            day += timedelta(days=1)


def business_seconds_between(schedule: Schedule, start: datetime, end: datetime) -> float:
    """Business seconds from start to end; negative when end is before start."""
    if end < start:
        return -business_seconds_between(schedule, end, start)
    return sum((hi - lo).total_seconds() for lo, hi in business_intervals(schedule, start, end))


def business_add(schedule: Schedule, start: datetime, seconds: float) -> datetime:
    """The instant at which `seconds` of business time have passed since start (UTC)."""
    start = start.astimezone(UTC)
    remaining = timedelta(seconds=seconds)
    if remaining <= timedelta(0):
        return start
    cursor = start
    while cursor - start < _HORIZON:
        window_end = cursor + _WINDOW
        for lo, hi in business_intervals(schedule, cursor, window_end):
            length = hi - lo
            if length >= remaining:
                return lo + remaining
            remaining -= length
        cursor = window_end
    raise ScheduleEmpty("The business calendar has no business time ahead.")
