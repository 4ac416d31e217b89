"""Attainment: one pass per agreement and month, with status, trend and the worst breaches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from review import (
    Agreement,
    AgreementKind,
    AttainmentAccumulator,
    AttainmentStatus,
    Metric,
    ReviewPeriod,
    SlaRecord,
    compute_attainment,
    status_of,
)

PERIOD = ReviewPeriod(start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2025, 1, 1, tzinfo=UTC))
P1 = Agreement(
    key="sla-p1",
    name="Resolution P1",
    kind=AgreementKind.SLA,
    metric=Metric.RESOLUTION,
    target_percent=95,
    window=timedelta(hours=4),
    priority="1",
    service_key="svc",
)


def record(n: int, *, breached: bool, day: int = 0, hours: float = 1.0) -> SlaRecord:
    start = PERIOD.start + timedelta(days=day)
    return SlaRecord(
        key=f"r{n:06d}",
        agreement_key=P1.key,
        task_ref=f"INC{n:07d}",
        priority="1",
        start=start,
        stop=start + timedelta(hours=hours),
        breached=breached,
        elapsed=timedelta(hours=hours),
    )


outcomes = st.lists(st.tuples(st.booleans(), st.integers(0, 364)), max_size=60)


@given(outcomes)
def test_attainment_stays_between_zero_and_one(cases: list[tuple[bool, int]]) -> None:
    """Whatever mix of met and breached records, attainment is a share in [0, 1]."""
    records = [record(i, breached=b, day=d) for i, (b, d) in enumerate(cases)]
    result = compute_attainment([P1], records, PERIOD)[P1.key]
    if not records:
        assert result.attainment is None and result.status is AttainmentStatus.NO_DATA
    else:
        assert result.attainment is not None and 0.0 <= result.attainment <= 1.0
        assert all(m.attainment is not None and 0 <= m.attainment <= 1 for m in result.monthly)


@given(outcomes, st.integers(0, 364))
def test_adding_a_met_record_never_lowers_attainment(
    cases: list[tuple[bool, int]], day: int
) -> None:
    """One more record that met its target cannot make the agreement look worse."""
    records = [record(i, breached=b, day=d) for i, (b, d) in enumerate(cases)]
    before = compute_attainment([P1], records, PERIOD)[P1.key].attainment
    after = compute_attainment([P1], [*records, record(999, breached=False, day=day)], PERIOD)
    assert after[P1.key].attainment is not None
    assert before is None or after[P1.key].attainment >= before


def test_status_is_met_at_risk_or_missed_against_target_and_margin() -> None:
    """95 % target, 2-point margin: 98 % met, 96 % at risk, 90 % missed."""
    for met, expected in ((98, "met"), (96, "at_risk"), (90, "missed")):
        records = [record(i, breached=i >= met) for i in range(100)]
        result = compute_attainment([P1], records, PERIOD, at_risk_margin_percent=2.0)[P1.key]
        assert result.status is AttainmentStatus(expected), met
        assert result.measured == 100 and result.breached == 100 - met


@pytest.mark.parametrize(
    ("target", "percent", "expected"),
    [
        (99.9, 1.0, "met"),  # 100 % of a 99.9 % target is met, not "at risk" forever
        (99.9, 0.9996, "met"),
        (99.9, 0.9993, "at_risk"),  # more than half of the 0.1 % error budget used
        (99.9, 0.998, "missed"),
        (99.0, 0.996, "met"),
        (99.0, 0.994, "at_risk"),
        (95.0, 0.97, "met"),
        (95.0, 0.969, "at_risk"),  # below target + 2 points
        (100.0, 1.0, "met"),
    ],
)
def test_at_risk_band_is_the_margin_but_at_most_half_the_error_budget(
    target: float, percent: float, expected: str
) -> None:
    """A strict target met with room to spare reads "met"; the 2-point band applies only where
    the target leaves room for it."""
    assert status_of(percent, target, 2.0) is AttainmentStatus(expected)


def test_a_million_records_stream_through_and_only_the_worst_breaches_are_kept() -> None:
    """Records come from a generator (never a list); the pack keeps only the N worst breaches."""
    accumulator = AttainmentAccumulator([P1], PERIOD, top_n=5)

    def stream():  # type: ignore[no-untyped-def]
        for n in range(20_000):
            yield record(n, breached=n % 10 == 0, day=n % 365, hours=4 + n / 1000)

    accumulator.add_all(stream())
    result = accumulator.results()[P1.key]
    assert result.measured == 20_000 and result.breached == 2_000
    assert len(result.top_breaches) == 5
    assert [b.task_ref for b in result.top_breaches] == [
        f"INC{n:07d}" for n in (19990, 19980, 19970, 19960, 19950)
    ]
    assert result.top_breaches[0].overrun is not None and result.top_breaches[0].overrun > 5


def test_records_outside_the_period_or_still_running_are_not_counted() -> None:
    """Only decided records inside the period count; a running clock that has not breached waits."""
    outside = record(1, breached=True, day=-3)
    running = record(2, breached=False).model_copy(update={"stop": None})
    running_breached = record(3, breached=True).model_copy(update={"stop": None})
    accumulator = AttainmentAccumulator([P1], PERIOD).add_all([outside, running, running_breached])
    result = accumulator.results()[P1.key]
    assert (result.measured, result.breached) == (1, 1)
    assert accumulator.ignored == 2


def test_monthly_trend_worst_months_and_breaching_priorities() -> None:
    """A service getting worse month by month shows a negative trend and its worst months."""
    records = []
    for month in range(6):
        for n in range(20):
            day = month * 31 + 1
            records.append(record(month * 100 + n, breached=n < month * 2, day=day))
    result = compute_attainment([P1], records, PERIOD)[P1.key]
    assert [m.month for m in result.monthly][:2] == ["2024-01", "2024-02"]
    assert result.trend is not None and result.trend < 0
    assert result.worst_months[0] == "2024-06"
    assert result.top_breaching_priorities == (("1", 30),)
