"""Customer satisfaction per service: averages on a 1-5 scale and a recent drop."""

from __future__ import annotations

from datetime import UTC, datetime

from review import CsatAccumulator, CsatResponse, ReviewPeriod

PERIOD = ReviewPeriod(start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2025, 1, 1, tzinfo=UTC))


def _answer(n: int, month: int, score: float, scale: float = 5) -> CsatResponse:
    return CsatResponse(
        key=f"a{n}",
        service_key="svc",
        score=score,
        scale_max=scale,
        answered_at=datetime(2024, month, 10, tzinfo=UTC),
    )


def test_average_distribution_and_drop_over_the_last_three_months() -> None:
    """Good early months, poor recent ones: the summary shows the average and a positive drop."""
    answers = [_answer(m, m, 5) for m in range(1, 10)] + [_answer(m, m, 2) for m in range(10, 13)]
    summary = CsatAccumulator(PERIOD).add_all(answers).summary("svc")
    assert summary.responses == 12 and summary.average == (9 * 5 + 3 * 2) / 12
    assert summary.distribution == ((2, 3), (5, 9))
    assert summary.drop == 3.0


def test_other_scales_are_normalised_and_outside_answers_ignored() -> None:
    """A 10 of 10 counts as 5 of 5; answers outside the period or without service are ignored."""
    late = _answer(3, 1, 5).model_copy(update={"answered_at": datetime(2025, 2, 1, tzinfo=UTC)})
    orphan = _answer(4, 1, 5).model_copy(update={"service_key": None})
    accumulator = CsatAccumulator(PERIOD).add_all([_answer(1, 1, 10, 10), late, orphan])
    assert accumulator.summary("svc").average == 5.0
    assert accumulator.summary("svc").responses == 1
    assert accumulator.summary("none").responses == 0
