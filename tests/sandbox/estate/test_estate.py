"""The seeded estate: deterministic, realistic breach rates, and the deliberate gaps."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sandbox import Sandbox
from sandbox.estate import build_estate

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def test_same_seed_same_estate_other_seed_other_estate() -> None:
    """build_estate is a pure function of its arguments."""
    first = build_estate(seed=11, services=4, sla_records=300, now=NOW)
    assert first == build_estate(seed=11, services=4, sla_records=300, now=NOW)
    other = build_estate(seed=12, services=4, sla_records=300, now=NOW)
    assert [p.sys_id for p in other.people] != [p.sys_id for p in first.people]


def test_sla_attainment_is_about_93_percent_and_varies_per_service(sandbox: Sandbox) -> None:
    """About 93 % of SLA records are met overall (the real data set's rate), with services
    spread on both sides of it."""
    records = sandbox.estate.sla_records
    made = sum(not r.has_breached for r in records) / len(records)
    assert 0.91 <= made <= 0.95
    service_of = {i.sys_id: i.business_service for i in sandbox.estate.incidents}
    totals, met = Counter[str](), Counter[str]()
    for r in records:
        totals[service_of[r.task]] += 1
        met[service_of[r.task]] += not r.has_breached
    rates = [met[s] / totals[s] for s in totals]
    assert min(rates) < 0.92 and max(rates) > 0.95


def test_records_span_13_months_and_share_update_seconds(sandbox: Sandbox) -> None:
    """SLA records start within the last 13 months before `now`, and are updated in batches."""
    estate = sandbox.estate
    starts = [r.start_time for r in estate.sla_records]
    assert min(starts) >= estate.now - timedelta(days=400)
    assert max(starts) < estate.now
    shared = Counter(r.sys_updated_on for r in estate.sla_records)
    assert max(shared.values()) >= 20


def test_deliberate_gaps_exist(sandbox: Sandbox) -> None:
    """Each named gap is really there, so tests of gap reporting can rely on it."""
    estate, gaps = sandbox.estate, sandbox.estate.deliberate
    assert estate.service(gaps["service_without_owner"]).owner is None
    assert not [a for a in estate.agreements if a.applies_to == gaps["component_without_ola"]]
    assert estate.person(gaps["person_email_hidden"]).jira_email_hidden
    assert not estate.person(gaps["person_not_in_jira"]).in_jira
    special = estate.service(gaps["service_special_name"]).name
    assert {'"', "^", "="} <= set(special) and not special.isascii()
    service_of = {i.sys_id: i.business_service for i in estate.incidents}
    silent = gaps["service_without_csat"]
    assert not [c for c in estate.csat if service_of[c.source_id] == silent]
    by_id = {a.sys_id: a for a in estate.agreements}
    for key, stricter in (("ola_stricter", True), ("ola_looser", False)):
        ola, sla = by_id[gaps[key]], by_id[gaps[f"{key}_service_sla"]]
        assert ola.type in ("OLA", "Underpinning contract") and sla.type == "SLA"
        assert (float(ola.target_percentage) > float(sla.target_percentage)) is stricter
    cycle = gaps["relation_cycle"]
    children = {r.child for r in estate.relations if r.parent == cycle}
    assert any((c, cycle) in {(r.parent, r.child) for r in estate.relations} for c in children)


def test_every_agreement_kind_and_metric_is_served(sn: object, sandbox: Sandbox) -> None:
    """contract_sla holds SLAs, OLAs and underpinning contracts for all three metrics."""
    kinds = {(a.type, a.metric) for a in sandbox.estate.agreements}
    assert {k for k, _ in kinds} == {"SLA", "OLA", "Underpinning contract"}
    assert {m for _, m in kinds} == {"availability", "response", "resolution"}


def test_a_large_estate_builds_with_unique_people() -> None:
    """1,000 services outgrow the name lists: namesakes are numbered, nobody is duplicated."""
    from sandbox.estate import build_estate

    estate = build_estate(7, 1000, 500)
    emails = [p.email for p in estate.people]
    assert len(estate.services) == 1000
    assert len(emails) == len(set(emails))
