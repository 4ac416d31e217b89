"""The cycle calendar: which cycle a day is in, its id, when it opens and what it reviews."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from review import PeriodKind, cycle_for, earlier_cycles, live_period


@pytest.mark.parametrize(
    ("today", "frequency", "cycle_id", "opens"),
    [
        (date(2026, 3, 1), "yearly", "2026", date(2026, 1, 15)),
        (date(2026, 1, 14), "yearly", "2025", date(2025, 1, 15)),
        (date(2026, 8, 1), "half-yearly", "2026-H2", date(2026, 7, 15)),
        (date(2026, 2, 1), "half-yearly", "2026-H1", date(2026, 1, 15)),
        (date(2026, 10, 20), "quarterly", "2026-Q4", date(2026, 10, 15)),
        (date(2026, 1, 2), "quarterly", "2025-Q4", date(2025, 10, 15)),
    ],
)
def test_cycle_id_and_opening_follow_frequency_and_start(
    today: date, frequency: str, cycle_id: str, opens: date
) -> None:
    """The cycle is the latest opening on or before today; its id names year and half/quarter."""
    cycle = cycle_for(today, frequency, "01-15")
    assert (cycle.id, cycle.opens) == (cycle_id, opens)


def test_period_ends_when_the_cycle_opens() -> None:
    """Trailing 12 months by default; since the last review = since the previous opening."""
    trailing = cycle_for(date(2026, 8, 1), "half-yearly", "01-15")
    assert trailing.period.start == datetime(2025, 7, 15, tzinfo=UTC)
    assert trailing.period.end == datetime(2026, 7, 15, tzinfo=UTC)
    since = cycle_for(date(2026, 8, 1), "half-yearly", "01-15", PeriodKind.SINCE_LAST_REVIEW)
    assert since.period.start == datetime(2026, 1, 15, tzinfo=UTC)


def test_month_end_starts_fall_back_to_the_last_day_of_shorter_months() -> None:
    """A cycle starting on the 31st opens on the 30th in 30-day months."""
    assert cycle_for(date(2026, 5, 1), "quarterly", "01-31").opens == date(2026, 4, 30)


def test_a_bad_start_names_the_expected_format() -> None:
    """A start that is not MM-DD is refused with an example."""
    with pytest.raises(ValueError, match="MM-DD"):
        cycle_for(date(2026, 5, 1), "yearly", "15-01")


def test_earlier_cycles_walk_back_the_calendar() -> None:
    """The cycles before a quarterly cycle are the previous quarters, latest first."""
    cycle = cycle_for(date(2027, 3, 1), "quarterly", "01-15")
    earlier = earlier_cycles(cycle, 5, "01-15")
    assert [c.id for c in earlier] == ["2026-Q4", "2026-Q3", "2026-Q2", "2026-Q1", "2025-Q4"]
    assert earlier[0].opens == date(2026, 10, 15)


def _day(value: datetime) -> date:
    return value.date()


@pytest.mark.parametrize(
    ("today", "start", "end"),
    [
        (date(2026, 1, 15), date(2025, 1, 15), date(2026, 1, 15)),  # the opening day
        (date(2026, 1, 31), date(2025, 1, 15), date(2026, 1, 15)),  # its month not over yet
        (date(2026, 2, 3), date(2025, 2, 1), date(2026, 2, 1)),  # January counts now
        (date(2026, 4, 20), date(2025, 4, 1), date(2026, 4, 1)),  # a review held in April
    ],
)
def test_live_period_ends_at_the_last_whole_month(today: date, start: date, end: date) -> None:
    """A pack not frozen yet shows data up to its last whole month: a review held in April sees
    March, not only what was known when the cycle opened in January; the end moves once a month."""
    cycle = cycle_for(today, "yearly", "01-15")
    period = live_period(cycle, today)
    assert (_day(period.start), _day(period.end)) == (start, end)
    assert live_period(cycle, today.replace(day=28)) == period, "the same all month"


def test_live_period_since_last_review_keeps_its_start() -> None:
    cycle = cycle_for(date(2026, 9, 10), "half-yearly", "01-15", PeriodKind.SINCE_LAST_REVIEW)
    period = live_period(cycle, date(2026, 9, 10), PeriodKind.SINCE_LAST_REVIEW)
    assert period.start == cycle.period.start
    assert _day(period.end) == date(2026, 9, 1)
