"""Attainment: how often each agreement was met over a review period, computed in one pass.

SLA records can number a million per run, so they are never held: `AttainmentAccumulator.add`
counts each record into its agreement's per-month and per-priority tallies and keeps only the
worst `top_n` breaches per agreement (a bounded heap). `results()` turns the tallies into
`Attainment` values with status, monthly trend, worst months and top breaching priorities.

A record counts in the month it was decided: when it stopped, or, for a running clock that has
already breached, when it started. A running clock that has not breached yet is not decided and
is not counted.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from review.model import (
    Agreement,
    Attainment,
    AttainmentStatus,
    Breach,
    MonthlyAttainment,
    ReviewPeriod,
    SlaRecord,
)

DEFAULT_TOP_BREACHES = 10
TOP_PRIORITIES = 3


def status_of(
    attainment: float | None, target_percent: float, margin_percent: float
) -> AttainmentStatus:
    """MET, AT_RISK or MISSED.

    At risk: at or above target, but within `margin_percent` points of it, and never a wider
    band than half of what the target leaves to 100 % (half its error budget): a 95 % target
    with a 2-point margin is at risk below 97 %, a 99.9 % target only below 99.95 %, so a
    service meeting a strict target with room to spare reads "met" (a flat 2 points would keep
    every target above 98 % "at risk" forever, even at 100 %)."""
    if attainment is None:
        return AttainmentStatus.NO_DATA
    percent = attainment * 100
    if percent < target_percent - 1e-9:
        return AttainmentStatus.MISSED
    band = min(margin_percent, max(100.0 - target_percent, 0.0) / 2)
    if percent < target_percent + band - 1e-9:
        return AttainmentStatus.AT_RISK
    return AttainmentStatus.MET


@dataclass
class _Tally:
    """Counts for one agreement; `heap` holds the worst breaches (smallest rank first)."""

    months: dict[str, list[int]] = field(default_factory=dict)  # month -> [measured, breached]
    priorities: Counter[str] = field(default_factory=Counter)
    heap: list[tuple[tuple[float, str], Breach]] = field(default_factory=list)


_NO_RECORDS = _Tally()  # read only: the tally of an agreement nothing was counted for


class AttainmentAccumulator:
    """Counts SLA records per agreement and month for one review period, in constant memory."""

    def __init__(
        self,
        agreements: Iterable[Agreement],
        period: ReviewPeriod,
        *,
        at_risk_margin_percent: float = 2.0,
        top_n: int = DEFAULT_TOP_BREACHES,
    ) -> None:
        self.agreements: dict[str, Agreement] = {a.key: a for a in agreements}
        self.period = period
        self.margin = at_risk_margin_percent
        self.top_n = top_n
        self._tallies: dict[str, _Tally] = {}
        self.ignored = 0  # records outside the period, undecided, or of an unknown agreement

    def add(self, record: SlaRecord) -> None:
        """Count one record (records outside the period or of unknown agreements are ignored)."""
        decided = _decided_at(record)
        agreement = self.agreements.get(record.agreement_key)
        if agreement is None or decided is None or not self._in_period(decided):
            self.ignored += 1
            return
        tally = self._tally(agreement.key)
        counts = tally.months.setdefault(decided.strftime("%Y-%m"), [0, 0])
        counts[0] += 1
        if record.breached:
            counts[1] += 1
            tally.priorities[record.priority or "none"] += 1
            self._keep_breach(tally, agreement, record)

    def add_counts(self, agreement_key: str, month: str, measured: int, breached: int) -> None:
        """Count `measured` records (`breached` of them breached) decided in `month` inside
        the period, tallied elsewhere (the state store's GROUP BY). Their priorities and
        breach list come from `add_breach` with each breached record."""
        if agreement_key not in self.agreements:
            self.ignored += measured
            return
        tally = self._tally(agreement_key)
        counts = tally.months.setdefault(month, [0, 0])
        counts[0] += measured
        counts[1] += breached

    def add_breach(self, record: SlaRecord) -> None:
        """A breached record already counted by `add_counts`: its priority and the breach list."""
        decided = _decided_at(record)
        agreement = self.agreements.get(record.agreement_key)
        if agreement is None or decided is None or not self._in_period(decided):
            return
        if not record.breached:
            return
        tally = self._tally(agreement.key)
        tally.priorities[record.priority or "none"] += 1
        self._keep_breach(tally, agreement, record)

    def add_all(self, records: Iterable[SlaRecord]) -> AttainmentAccumulator:
        """Count every record of an iterable (consumed lazily); returns self."""
        for record in records:
            self.add(record)
        return self

    def results(self) -> dict[str, Attainment]:
        """Attainment of every known agreement, by agreement key (NO_DATA where none counted)."""
        return {key: self._attainment(agreement) for key, agreement in self.agreements.items()}

    def breaches(self, agreement_keys: Iterable[str] | None = None) -> tuple[Breach, ...]:
        """The worst kept breaches over the given agreements (all by default), worst first."""
        keys = self._tallies if agreement_keys is None else agreement_keys
        kept = [entry for key in keys if key in self._tallies for entry in self._tallies[key].heap]
        return tuple(breach for _, breach in sorted(kept, key=lambda e: e[0], reverse=True))

    def _tally(self, agreement_key: str) -> _Tally:
        """The agreement's tally, made on first use (not built just to be thrown away)."""
        tally = self._tallies.get(agreement_key)
        if tally is None:
            tally = self._tallies[agreement_key] = _Tally()
        return tally

    def _in_period(self, moment: datetime) -> bool:
        return self.period.start <= moment < self.period.end

    def _keep_breach(self, tally: _Tally, agreement: Agreement, record: SlaRecord) -> None:
        overrun = _overrun(agreement, record)
        breach = Breach(
            record_key=record.key,
            agreement_key=agreement.key,
            task_ref=record.task_ref,
            priority=record.priority,
            start=record.start,
            elapsed=record.elapsed,
            overrun=overrun,
            url=record.source.url if record.source else None,
            source=record.source,
        )
        # Rank by overrun, ties by record key: the same input keeps the same breaches.
        entry = ((overrun or 0.0, _reverse(record.key)), breach)
        if len(tally.heap) < self.top_n:
            heapq.heappush(tally.heap, entry)
        elif entry[0] > tally.heap[0][0]:
            heapq.heapreplace(tally.heap, entry)

    def _attainment(self, agreement: Agreement) -> Attainment:
        tally = self._tallies.get(agreement.key) or _NO_RECORDS
        monthly = tuple(  # the model's validator itself: a third cheaper than the keywords
            _monthly(
                {
                    "month": month,
                    "measured": measured,
                    "breached": breached,
                    "attainment": (measured - breached) / measured,
                }
            )
            for month, (measured, breached) in sorted(tally.months.items())
        )
        measured = sum(m.measured for m in monthly)
        breached = sum(m.breached for m in monthly)
        attainment = (measured - breached) / measured if measured else None
        return Attainment(
            agreement_key=agreement.key,
            period=self.period,
            measured=measured,
            breached=breached,
            attainment=attainment,
            target_percent=agreement.target_percent,
            status=status_of(attainment, agreement.target_percent, self.margin),
            monthly=monthly,
            top_breaching_priorities=tuple(
                sorted(tally.priorities.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_PRIORITIES]
            ),
            worst_months=_worst_months(monthly, agreement.target_percent),
            trend=trend_of(monthly),
            top_breaches=tuple(b for _, b in sorted(tally.heap, key=lambda e: e[0], reverse=True)),
        )


def compute_attainment(
    agreements: Iterable[Agreement],
    records: Iterable[SlaRecord],
    period: ReviewPeriod,
    *,
    at_risk_margin_percent: float = 2.0,
    top_n: int = DEFAULT_TOP_BREACHES,
) -> dict[str, Attainment]:
    """Attainment per agreement key from a stream of records (one pass, constant memory)."""
    accumulator = AttainmentAccumulator(
        agreements, period, at_risk_margin_percent=at_risk_margin_percent, top_n=top_n
    )
    return accumulator.add_all(records).results()


def trend_of(monthly: Iterable[MonthlyAttainment]) -> float | None:
    """Least-squares slope of monthly attainment in percentage points per month (None if < 2)."""
    points = [
        (_month_index(m.month), m.attainment * 100) for m in monthly if m.attainment is not None
    ]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


_monthly: Callable[[dict[str, Any]], MonthlyAttainment] = (
    MonthlyAttainment.__pydantic_validator__.validate_python
)


def by_service(
    attainments: Mapping[str, Attainment], agreements: Iterable[Agreement]
) -> dict[str, tuple[Attainment, ...]]:
    """Group attainments by the service their agreement belongs to (component OLAs excluded)."""
    grouped: dict[str, list[Attainment]] = {}
    for agreement in agreements:
        if agreement.service_key and agreement.key in attainments:
            grouped.setdefault(agreement.service_key, []).append(attainments[agreement.key])
    return {key: tuple(values) for key, values in grouped.items()}


def _decided_at(record: SlaRecord) -> datetime | None:
    if record.stop is not None:
        return record.stop
    return record.start if record.breached else None


def _overrun(agreement: Agreement, record: SlaRecord) -> float | None:
    if record.elapsed is None or not agreement.window:
        return None
    return record.elapsed / agreement.window


def _worst_months(monthly: tuple[MonthlyAttainment, ...], target_percent: float) -> tuple[str, ...]:
    below = [m for m in monthly if m.attainment is not None and m.attainment * 100 < target_percent]
    below.sort(key=lambda m: (m.attainment, m.month))
    return tuple(m.month for m in below[:3])


def _month_index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def _reverse(key: str) -> str:
    """A sort key under which smaller record keys rank higher among equal overruns (each
    character c as U+10FFFF - c; an ASCII key, nearly every one, through one translate)."""
    if key.isascii():
        return key.translate(_REVERSED_ASCII)
    return "".join(chr(0x10FFFF - ord(ch)) for ch in key)


_REVERSED_ASCII = {c: chr(0x10FFFF - c) for c in range(128)}
