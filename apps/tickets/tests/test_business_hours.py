"""Business-time maths, checked against a minute-by-minute oracle on random schedules and zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.tickets.business_hours import (
    DAY_MINUTES,
    Schedule,
    ScheduleEmpty,
    business_add,
    business_seconds_between,
)

# Zones with DST (both hemispheres, half-hour shifts) and without.
ZONES = [
    "UTC",
    "Africa/Nairobi",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "America/Santiago",
    "Asia/Kolkata",
    "Europe/Paris",
]
# Nights on which some of the zones above change their clocks.
DST_DAYS = [
    datetime(2026, 3, 8, tzinfo=UTC),  # New York forward
    datetime(2026, 11, 1, tzinfo=UTC),  # New York back
    datetime(2026, 3, 29, tzinfo=UTC),  # London/Paris forward
    datetime(2026, 10, 25, tzinfo=UTC),  # London/Paris back
    datetime(2026, 4, 5, tzinfo=UTC),  # Lord Howe / Santiago back
    datetime(2026, 10, 4, tzinfo=UTC),  # Lord Howe forward
    datetime(2026, 9, 6, tzinfo=UTC),  # Santiago forward
]


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    zone = draw(st.sampled_from(ZONES))
    periods: dict[int, list[tuple[int, int]]] = {}
    for day in range(7):
        # Up to three periods a day (split shifts), possibly overlapping, on a 30-minute grid.
        for _ in range(draw(st.integers(0, 3))):
            start = draw(st.integers(0, 47)) * 30
            end = draw(st.integers(start // 30 + 1, 48)) * 30
            periods.setdefault(day, []).append((start, end))
    if not periods:
        periods[0] = [(9 * 60, 17 * 60)]
    holidays = draw(st.frozensets(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=20))
    return Schedule(tz=ZoneInfo(zone), periods=periods, holidays=holidays)


def instants() -> st.SearchStrategy[datetime]:
    """Minute-aligned instants, half of them around a DST change."""
    anywhere = st.integers(0, 364 * DAY_MINUTES).map(lambda m: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m))
    near_dst = st.tuples(st.sampled_from(DST_DAYS), st.integers(-2 * DAY_MINUTES, 2 * DAY_MINUTES)).map(
        lambda pair: pair[0] + timedelta(minutes=pair[1])
    )
    return st.one_of(anywhere, near_dst)


def _is_business(schedule: Schedule, instant: datetime) -> bool:
    """The oracle: the definition, applied to one instant's local wall clock."""
    local = instant.astimezone(schedule.tz)
    if local.date() in schedule.holidays:
        return False
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in schedule.periods.get(local.weekday(), ()))


def _oracle_seconds(schedule: Schedule, start: datetime, end: datetime) -> float:
    # Every zone above shifts on whole minutes, so counting minutes is exact for minute-aligned ends.
    minutes = int((end - start).total_seconds() // 60)
    return 60.0 * sum(_is_business(schedule, start + timedelta(minutes=i)) for i in range(minutes))


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(schedule=schedules(), start=instants(), minutes=st.integers(0, 3 * DAY_MINUTES))
def test_elapsed_business_time_matches_the_minute_oracle(schedule: Schedule, start: datetime, minutes: int) -> None:
    end = start + timedelta(minutes=minutes)
    assert business_seconds_between(schedule, start, end) == _oracle_seconds(schedule, start, end)


@PROPERTY
@given(schedule=schedules(), start=instants(), minutes=st.integers(1, 5 * 8 * 60))
def test_adding_business_time_lands_where_that_much_has_elapsed(
    schedule: Schedule, start: datetime, minutes: int
) -> None:
    due = business_add(schedule, start, minutes * 60)
    assert due > start
    assert business_seconds_between(schedule, start, due) == minutes * 60
    # The due instant is the first one: a minute earlier, less had elapsed.
    assert business_seconds_between(schedule, start, due - timedelta(minutes=1)) < minutes * 60
    # It falls in business time (or at the end of a period).
    assert _is_business(schedule, due - timedelta(minutes=1))


@PROPERTY
@given(schedule=schedules(), a=instants(), b=instants(), c=instants())
def test_elapsed_time_is_additive_and_bounded_by_wall_time(
    schedule: Schedule, a: datetime, b: datetime, c: datetime
) -> None:
    a, b, c = sorted([a, b, c])
    ab, bc = business_seconds_between(schedule, a, b), business_seconds_between(schedule, b, c)
    assert ab + bc == business_seconds_between(schedule, a, c)
    assert 0 <= ab <= (b - a).total_seconds()
    assert business_seconds_between(schedule, b, a) == -ab


@PROPERTY
@given(zone=st.sampled_from(ZONES), start=instants(), minutes=st.integers(0, 10 * DAY_MINUTES))
def test_around_the_clock_equals_real_elapsed_time_across_dst(zone: str, start: datetime, minutes: int) -> None:
    schedule = Schedule(tz=ZoneInfo(zone), periods={day: [(0, DAY_MINUTES)] for day in range(7)})
    end = start + timedelta(minutes=minutes)
    assert business_seconds_between(schedule, start, end) == minutes * 60
    assert business_add(schedule, start, minutes * 60) == end


def test_a_holiday_and_a_split_shift() -> None:
    monday = date(2026, 6, 1)
    schedule = Schedule.from_times(
        "Africa/Nairobi",
        {0: [(time(8), time(12)), (time(14), time(18))], 1: [(time(8), time(12)), (time(14), time(18))]},
        holidays=frozenset({monday}),
    )
    nairobi = ZoneInfo("Africa/Nairobi")
    friday_evening = datetime(2026, 5, 29, 17, tzinfo=nairobi)
    # Monday is a holiday: two hours from Friday evening run to Tuesday 10:00.
    assert business_add(schedule, friday_evening, 2 * 3600) == datetime(2026, 6, 2, 10, tzinfo=nairobi)
    # Five hours cross the lunch break: Tuesday 08:00 + 4 h (to 12:00) + 1 h from 14:00.
    assert business_add(schedule, friday_evening, 5 * 3600) == datetime(2026, 6, 2, 15, tzinfo=nairobi)


def test_new_york_spring_forward_night_shift_is_one_hour_shorter() -> None:
    schedule = Schedule.from_times("America/New_York", {6: [(time(0), time(6))]})  # Sundays 00:00-06:00
    sunday = datetime(2026, 3, 8, tzinfo=ZoneInfo("America/New_York"))
    assert business_seconds_between(schedule, sunday, sunday + timedelta(days=1)) == 5 * 3600


def test_a_schedule_without_hours_is_refused() -> None:
    with pytest.raises(ScheduleEmpty):
        business_add(Schedule(tz=UTC, periods={}), datetime(2026, 1, 1, tzinfo=UTC), 60)
