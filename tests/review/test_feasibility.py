"""Feasibility: service targets checked against what their components' agreements allow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from review import (
    Agreement,
    AgreementKind,
    AvailabilityRule,
    Component,
    FeasibilityRules,
    Metric,
    Service,
    TimeRule,
    check_feasibility,
    compose,
)


def _ola(
    key: str, component: str, metric: Metric, percent: float, hours: float | None = None
) -> Agreement:
    return Agreement(
        key=key,
        name=f"OLA {key}",
        kind=AgreementKind.OLA,
        metric=metric,
        target_percent=percent,
        window=timedelta(hours=hours) if hours else None,
        component_key=component,
    )


@given(
    st.sampled_from(list(Metric)),
    st.floats(0, 100),
    st.floats(0.1, 500),
    st.sampled_from(list(AvailabilityRule)),
    st.sampled_from(list(TimeRule)),
)
def test_a_single_component_allows_exactly_its_own_target(
    metric: Metric, percent: float, hours: float, availability: AvailabilityRule, time: TimeRule
) -> None:
    """With one component, whatever the rule, what it allows is its own agreement."""
    window = None if metric is Metric.AVAILABILITY else hours
    ola = _ola("o", "c", metric, percent, window)
    rules = FeasibilityRules(availability=availability, time=time)
    achievable = compose(metric, [ola], rules, [Component(key="c", name="c")])
    assert achievable.percent == percent
    assert achievable.window == ola.window


def test_availability_in_series_multiplies_and_names_the_weakest_first() -> None:
    """Two 99.9 % components allow 99.8 %: a 99.9 % SLA is flagged with both components."""
    service = Service(
        key="s",
        name="Payroll",
        components=(Component(key="a", name="db"), Component(key="b", name="app")),
    )
    sla = Agreement(
        key="sla", name="SLA Payroll availability", kind=AgreementKind.SLA,
        metric=Metric.AVAILABILITY, target_percent=99.9, service_key="s",
    )  # fmt: skip
    olas = [_ola("oa", "a", Metric.AVAILABILITY, 99.9), _ola("ob", "b", Metric.AVAILABILITY, 99.95)]
    (finding,) = check_feasibility(service, [sla, *olas])
    assert finding.service_target == "99.9 %" and finding.achievable == "99.85 %"
    assert finding.components == ("db", "app")
    assert check_feasibility(service, [sla, *olas], FeasibilityRules(availability="weakest")) == ()


def test_sequential_hand_offs_sum_the_longest_dependency_chain() -> None:
    """app -> db -> host, 2 h each: a 4 h resolution target is infeasible under the sum rule."""
    components = (
        Component(key="app", name="app", depends_on=("db",)),
        Component(key="db", name="db", depends_on=("host",)),
        Component(key="host", name="host"),
    )
    service = Service(key="s", name="Payroll", components=components)
    sla = Agreement(
        key="sla", name="SLA P1", kind=AgreementKind.SLA, metric=Metric.RESOLUTION,
        target_percent=90, window=timedelta(hours=4), priority="1", service_key="s",
    )  # fmt: skip
    olas = [_ola(f"o-{c.key}", c.key, Metric.RESOLUTION, 95, 2) for c in components]
    assert check_feasibility(service, [sla, *olas]) == ()  # slowest: 2 h fits in 4 h
    (finding,) = check_feasibility(service, [sla, *olas], FeasibilityRules(time="sum"))
    assert finding.achievable == "within 6 h" and finding.service_target == "within 4 h"


def test_a_service_percentage_above_the_weakest_component_is_flagged() -> None:
    """95 % of P1 within 8 h cannot rest on a component that promises 90 %."""
    service = Service(key="s", name="Payroll", components=(Component(key="c", name="db"),))
    sla = Agreement(
        key="sla", name="SLA P1", kind=AgreementKind.SLA, metric=Metric.RESOLUTION,
        target_percent=95, window=timedelta(hours=8), priority="1", service_key="s",
    )  # fmt: skip
    other_priority = _ola("o2", "c", Metric.RESOLUTION, 50, 1).model_copy(update={"priority": "2"})
    (finding,) = check_feasibility(
        service, [sla, _ola("o", "c", Metric.RESOLUTION, 90, 2), other_priority]
    )
    assert (finding.service_target, finding.achievable, finding.components) == (
        "95 %",
        "90 %",
        ("db",),
    )


def test_the_sandbox_looser_ola_is_found_and_named(estate: Any) -> None:
    """The estate's deliberately loose OLA makes its service's availability SLA infeasible."""
    deliberate = estate.raw.deliberate
    ola = next(a for a in estate.agreements if a.key == deliberate["ola_looser"])
    sla = next(a for a in estate.agreements if a.key == deliberate["ola_looser_service_sla"])
    service = estate.service(sla.service_key or "")
    for rules in (FeasibilityRules(), FeasibilityRules(availability="weakest")):
        findings = [
            f
            for f in check_feasibility(service, estate.agreements, rules)
            if f.agreement_key == sla.key
        ]
        assert len(findings) == 1, rules
        component = next(c for c in service.components if c.key == ola.component_key)
        assert findings[0].components[0] == component.name
        assert "99.5 %" in findings[0].achievable or rules.availability == "series"


def test_the_sandbox_stricter_ola_is_not_a_finding(estate: Any) -> None:
    """An OLA stricter than its service's SLA supports the target; it is never the cause."""
    sla_key = estate.raw.deliberate["ola_stricter_service_sla"]
    sla = next(a for a in estate.agreements if a.key == sla_key)
    service = estate.service(sla.service_key or "")
    weakest = FeasibilityRules(availability="weakest")
    assert [
        f
        for f in check_feasibility(service, estate.agreements, weakest)
        if f.agreement_key == sla_key
    ] == []


def test_a_dependency_cycle_does_not_hang_the_sum_rule(estate: Any) -> None:
    """The estate's relation cycle is cut, and the sum rule still reports finite numbers."""
    cyclic = estate.raw.deliberate["relation_cycle"]
    service = next(s for s in estate.services if cyclic in {c.key for c in s.components})
    findings = check_feasibility(service, estate.agreements, FeasibilityRules(time="sum"))
    time_findings = [f for f in findings if f.metric is not Metric.AVAILABILITY]
    assert time_findings, "chained 2 h OLAs exceed the 4 h P1 target when summed"
    assert all(f.achievable.startswith("within ") for f in time_findings)
