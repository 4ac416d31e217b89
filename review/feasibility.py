"""Feasibility: a service target may not exceed what its components' agreements allow (seed policy).

For each service agreement (SLA) the agreements of the service's components (OLAs and
underpinning contracts) with the same metric, and the same priority or none, are composed by a
configurable rule:

- availability: `series` (all components needed: the product of their availabilities) or
  `weakest` (the lowest component availability);
- time targets (response, resolution): `slowest` (the service's window cannot be shorter than the
  slowest component's) or `sum` (sequential hand-offs: the windows add up along the longest chain
  of `depends_on` among the components);
- percentage of time targets: the service's percentage cannot exceed the weakest component's.

Every service target stricter than the composition allows becomes a `FeasibilityFinding` with both
numbers and the components responsible. Components without a matching agreement are left out (the
gap list names them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from review.model import Agreement, Component, FeasibilityFinding, Metric, Service

EPSILON = 1e-9


class AvailabilityRule(StrEnum):
    """How component availabilities compose into the service's."""

    SERIES = "series"
    WEAKEST = "weakest"


class TimeRule(StrEnum):
    """How component time windows compose into the service's."""

    SLOWEST = "slowest"
    SUM = "sum"


class FeasibilityRules(BaseModel):
    """The composition rules (configurable; the defaults follow the issue's wording)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    availability: AvailabilityRule = AvailabilityRule.SERIES
    time: TimeRule = TimeRule.SLOWEST


DEFAULT_RULES = FeasibilityRules()


class Achievable(BaseModel):
    """What a set of component agreements allows for one metric."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    percent: float
    window: timedelta | None = None


def compose_availability(percents: Sequence[float], rule: AvailabilityRule) -> float:
    """The availability (percent) components allow together; a single one allows its own."""
    if len(percents) == 1:
        return percents[0]
    if rule is AvailabilityRule.WEAKEST:
        return min(percents)
    return math.prod(p / 100 for p in percents) * 100


def compose(
    metric: Metric,
    component_agreements: Sequence[Agreement],
    rules: FeasibilityRules = DEFAULT_RULES,
    components: Sequence[Component] = (),
) -> Achievable:
    """What `component_agreements` (one metric, non-empty) allow the service to promise."""
    if not component_agreements:
        raise ValueError(f"no component agreements to compose for metric {metric.value}")
    percents = [a.target_percent for a in component_agreements]
    if metric is Metric.AVAILABILITY:
        return Achievable(percent=compose_availability(percents, rules.availability))
    windows = {a.component_key or a.key: a.window for a in component_agreements if a.window}
    window: timedelta | None = None
    if windows and rules.time is TimeRule.SUM:
        window = _longest_chain(windows, components)
    elif windows:
        window = max(windows.values())
    return Achievable(percent=min(percents), window=window)


def check_feasibility(
    service: Service,
    agreements: Iterable[Agreement],
    rules: FeasibilityRules = DEFAULT_RULES,
) -> tuple[FeasibilityFinding, ...]:
    """Every target of `service` stricter than its components' agreements allow."""
    agreements = tuple(agreements)
    component_keys = {c.key for c in service.components}
    own = [a for a in agreements if a.service_key == service.key and not a.component_key]
    underlying = [a for a in agreements if a.component_key in component_keys]
    findings: list[FeasibilityFinding] = []
    for sla in sorted(own, key=lambda a: a.key):
        matching = [a for a in underlying if _applies(a, sla)]
        if matching:
            findings.extend(_check_one(service, sla, matching, rules))
    return tuple(findings)


def _applies(component_agreement: Agreement, sla: Agreement) -> bool:
    if component_agreement.metric is not sla.metric:
        return False
    return component_agreement.priority in (None, sla.priority)


def _best_per_component(matching: Sequence[Agreement]) -> list[Agreement]:
    """One agreement per component: the priority-specific one, else the general one."""
    chosen: dict[str, Agreement] = {}
    for agreement in sorted(matching, key=lambda a: (a.priority is None, a.key)):
        chosen.setdefault(agreement.component_key or "", agreement)
    return [chosen[key] for key in sorted(chosen)]


def _check_one(
    service: Service, sla: Agreement, matching: Sequence[Agreement], rules: FeasibilityRules
) -> list[FeasibilityFinding]:
    chosen = _best_per_component(matching)
    achievable = compose(sla.metric, chosen, rules, service.components)
    names = {c.key: c.name for c in service.components}
    findings: list[FeasibilityFinding] = []
    if achievable.percent < sla.target_percent - EPSILON:
        weaker = [a for a in chosen if a.target_percent < sla.target_percent - EPSILON]
        culprits = sorted(weaker or chosen, key=lambda a: (a.target_percent, a.key))
        rule = rules.availability.value if sla.metric is Metric.AVAILABILITY else "weakest"
        findings.append(
            _finding(
                service,
                sla,
                f"{_percent(sla.target_percent)}",
                f"{_percent(achievable.percent)}",
                [names.get(a.component_key or "", a.component_key or a.key) for a in culprits],
                f"{_percent(sla.target_percent)} promised, but the components' agreements "
                f"allow at most {_percent(achievable.percent)} (rule: {rule})",
            )
        )
    if sla.window and achievable.window and sla.window < achievable.window:
        slower = [a for a in chosen if a.window and a.window > sla.window]
        culprits = sorted(slower or chosen, key=lambda a: (-(a.window or timedelta()), a.key))
        findings.append(
            _finding(
                service,
                sla,
                f"within {duration_text(sla.window)}",
                f"within {duration_text(achievable.window)}",
                [names.get(a.component_key or "", a.component_key or a.key) for a in culprits],
                f"{duration_text(sla.window)} promised, but the components need "
                f"{duration_text(achievable.window)} (rule: {rules.time.value})",
            )
        )
    return findings


def _finding(
    service: Service,
    sla: Agreement,
    target: str,
    achievable: str,
    components: list[str],
    explanation: str,
) -> FeasibilityFinding:
    return FeasibilityFinding(
        service_key=service.key,
        agreement_key=sla.key,
        metric=sla.metric,
        service_target=target,
        achievable=achievable,
        components=tuple(components),
        explanation=f"{sla.name}: {explanation}; responsible: {', '.join(components)}",
    )


def _longest_chain(windows: dict[str, timedelta], components: Sequence[Component]) -> timedelta:
    """Largest sum of windows along a `depends_on` path (cycles are cut, not followed)."""
    edges = {c.key: [d for d in c.depends_on if d in windows] for c in components}
    best: dict[str, timedelta] = {}

    def walk(key: str, path: frozenset[str]) -> timedelta:
        if key in best:
            return best[key]
        onward = [walk(child, path | {key}) for child in edges.get(key, []) if child not in path]
        total = windows[key] + max(onward, default=timedelta())
        if not any(child in path for child in edges.get(key, [])):
            best[key] = total  # only cache results that no cycle cut short
        return total

    return max(walk(key, frozenset()) for key in sorted(windows))


def duration_text(window: timedelta) -> str:
    """A window as people write it: 15 min, 4 h, 3 d, 1 h 30 min."""
    minutes = int(window.total_seconds() // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days and not rest:
        return f"{days} d"
    parts = ([f"{days * 24 + hours} h"] if days or hours else []) + (
        [f"{mins} min"] if mins else []
    )
    return " ".join(parts) or "0 min"


def _percent(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text} %"
