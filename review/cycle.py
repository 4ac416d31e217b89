"""The review cycle calendar: which cycle a day falls in, when it opens, what period it reviews.

A cycle opens on a fixed month-day (e.g. 01-15) once a year, twice a year or every quarter. Its id
names the year of its yearly anchor and, below yearly, its half or quarter: `2026`, `2026-H2`,
`2026-Q3`. The period a cycle reviews ends when the cycle opens; while a review's pack is not
frozen, `live_period` moves that end to the last whole month, once a month, so a review held
months into the cycle sees recent data and the tickets still stay unchanged between the syncs of
a month. A frozen pack keeps the period it was reviewed on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from review.model import ReviewPeriod


class Frequency(StrEnum):
    """How often a review cycle opens."""

    YEARLY = "yearly"
    HALF_YEARLY = "half-yearly"
    QUARTERLY = "quarterly"

    @property
    def months(self) -> int:
        """Months between two openings."""
        return {"yearly": 12, "half-yearly": 6, "quarterly": 3}[self.value]


class PeriodKind(StrEnum):
    """Which span a review measures."""

    TRAILING_12_MONTHS = "trailing_12_months"
    SINCE_LAST_REVIEW = "since_last_review"


class Cycle(BaseModel):
    """One review cycle: its id (used in ticket keys), the day it opens, the period it reviews."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    opens: date
    period: ReviewPeriod
    frequency: Frequency = Frequency.YEARLY


def cycle_for(
    today: date,
    frequency: Frequency | str = Frequency.YEARLY,
    start: str = "01-15",
    period: PeriodKind | str = PeriodKind.TRAILING_12_MONTHS,
) -> Cycle:
    """The cycle `today` falls in: the latest opening on or before `today`.

    `start` is the MM-DD of the first opening each year. With `since_last_review`, the period
    starts when the previous cycle opened (the last review); otherwise 12 months before opening.
    """
    frequency, kind = Frequency(frequency), PeriodKind(period)
    month, day = _month_day(start)
    step = frequency.months
    anchor_year = today.year if (today.month, today.day) >= (month, day) else today.year - 1
    slot = 0
    while slot + 1 < 12 // step and _opening(anchor_year, month, day, (slot + 1) * step) <= today:
        slot += 1
    opens = _opening(anchor_year, month, day, slot * step)
    back = step if kind is PeriodKind.SINCE_LAST_REVIEW else 12
    period_start = _add_months(opens, -back, day)
    return Cycle(
        id=_cycle_id(anchor_year, frequency, slot),
        opens=opens,
        period=ReviewPeriod(start=_midnight(period_start), end=_midnight(opens)),
        frequency=frequency,
    )


def live_period(
    cycle: Cycle, today: date, period: PeriodKind | str = PeriodKind.TRAILING_12_MONTHS
) -> ReviewPeriod:
    """The period a review shows on `today`, while its pack is not frozen.

    It ends at the first day of `today`'s month, once that is after the cycle opened (until
    then: the day the cycle opened), so a review held months into the cycle sees the data up to
    its last whole month. The end moves once a month, not with every sync: a pack changes for
    its period at most monthly and the chart never has a partial last month. Trailing periods
    reach 12 months back from the end; `since_last_review` still starts at the previous
    opening."""
    end = max(cycle.opens, today.replace(day=1))
    if PeriodKind(period) is PeriodKind.SINCE_LAST_REVIEW:
        start = cycle.period.start
    else:
        start = _midnight(_add_months(end, -12, end.day))
    return ReviewPeriod(start=start, end=_midnight(end))


def earlier_cycles(
    cycle: Cycle,
    count: int,
    start: str = "01-15",
    period: PeriodKind | str = PeriodKind.TRAILING_12_MONTHS,
) -> tuple[Cycle, ...]:
    """The `count` cycles before `cycle` on the same calendar, latest first."""
    found: list[Cycle] = []
    current = cycle
    for _ in range(count):
        current = cycle_for(current.opens - timedelta(days=1), current.frequency, start, period)
        found.append(current)
    return tuple(found)


def months_between(earlier: date, later: date) -> int:
    """Whole calendar months from `earlier` to `later` (0 if `later` is not after it)."""
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    if later.day < earlier.day:
        months -= 1
    return max(months, 0)


def _cycle_id(year: int, frequency: Frequency, slot: int) -> str:
    if frequency is Frequency.YEARLY:
        return str(year)
    prefix = "H" if frequency is Frequency.HALF_YEARLY else "Q"
    return f"{year}-{prefix}{slot + 1}"


def _month_day(start: str) -> tuple[int, int]:
    try:
        parsed = date.fromisoformat(f"2024-{start}")  # a leap year accepts 02-29
    except ValueError:
        raise ValueError(f"cycle start {start!r} is not MM-DD, e.g. 01-15") from None
    return parsed.month, parsed.day


def _opening(anchor_year: int, month: int, day: int, months_later: int) -> date:
    return _add_months(date(anchor_year, month, min(day, 28)), months_later, day)


def _add_months(base: date, months: int, day: int) -> date:
    """`base` moved by whole months, on `day` or the month's last day if it is shorter."""
    index = base.year * 12 + base.month - 1 + months
    year, month = divmod(index, 12)
    for candidate in (day, 30, 29, 28):
        try:
            return date(year, month + 1, min(day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
