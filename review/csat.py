"""Customer satisfaction per service over a review period, computed in one pass.

Scores are normalised to the 1-5 scale the seed's surveys use, so answers from surveys with other
scales average together. The drop compares the last three months with the months before them:
a falling satisfaction is a reason to select a service for review.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from review.model import CsatResponse, ReviewPeriod

SCALE = 5.0
RECENT_MONTHS = 3


class CsatSummary(BaseModel):
    """One service's satisfaction over the period: answers, average, monthly averages, drop."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_key: str
    responses: int
    average: float | None
    distribution: tuple[tuple[int, int], ...] = ()  # (score 1-5, answers)
    monthly: tuple[tuple[str, float], ...] = ()  # (YYYY-MM, average)
    drop: float | None = None  # earlier average minus recent average; > 0 means worse lately


@dataclass
class _Tally:
    count: int = 0
    total: float = 0.0
    buckets: dict[int, int] = field(default_factory=dict)
    months: dict[str, list[float]] = field(default_factory=dict)  # month -> [count, total]


class CsatAccumulator:
    """Sums CSAT answers per service and month for one period, in constant memory."""

    def __init__(self, period: ReviewPeriod) -> None:
        self.period = period
        self._tallies: dict[str, _Tally] = {}

    def add(self, response: CsatResponse) -> None:
        """Count one answer (answers outside the period or without a service are ignored)."""
        if not response.service_key or response.scale_max <= 0:
            return
        if not self.period.start <= response.answered_at < self.period.end:
            return
        score = min(response.score / response.scale_max * SCALE, SCALE)
        tally = self._tallies.setdefault(response.service_key, _Tally())
        tally.count += 1
        tally.total += score
        bucket = max(1, round(score))
        tally.buckets[bucket] = tally.buckets.get(bucket, 0) + 1
        month = tally.months.setdefault(response.answered_at.strftime("%Y-%m"), [0.0, 0.0])
        month[0] += 1
        month[1] += score

    def add_all(self, responses: Iterable[CsatResponse]) -> CsatAccumulator:
        """Count every answer of an iterable; returns self."""
        for response in responses:
            self.add(response)
        return self

    def summary(self, service_key: str) -> CsatSummary:
        """The summary of one service (zero responses if it has none)."""
        tally = self._tallies.get(service_key)
        if tally is None or tally.count == 0:
            return CsatSummary(service_key=service_key, responses=0, average=None)
        monthly = tuple(
            (month, total / count) for month, (count, total) in sorted(tally.months.items())
        )
        return CsatSummary(
            service_key=service_key,
            responses=tally.count,
            average=tally.total / tally.count,
            distribution=tuple(sorted(tally.buckets.items())),
            monthly=monthly,
            drop=_drop(tally),
        )

    def summaries(self) -> dict[str, CsatSummary]:
        """Summaries of every service that had answers, by service key."""
        return {key: self.summary(key) for key in sorted(self._tallies)}


def _drop(tally: _Tally) -> float | None:
    months = sorted(tally.months)
    if len(months) <= RECENT_MONTHS:
        return None
    recent, earlier = months[-RECENT_MONTHS:], months[:-RECENT_MONTHS]

    def average(keys: list[str]) -> float:
        count = sum(tally.months[k][0] for k in keys)
        return sum(tally.months[k][1] for k in keys) / count

    return average(earlier) - average(recent)
