"""Round trip: the sandbox's seeded ServiceNow records, read over HTTP, map to exactly the estate.

Rows are read with plain `requests` as the connector will (Table API, the fields the shipped
mapping asks for, `sysparm_exclude_reference_link=true`); the connector-derived `slm_` fields are
computed here from the sandbox's relations, the way the connector's CMDB walk will.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests

from mapping import ComponentDraft, MapResult, ServiceDraft, SystemMapping, assemble
from review import (
    Agreement,
    AgreementKind,
    CsatResponse,
    Material,
    MaterialKind,
    Person,
    Service,
    SkippedRecord,
    SlaRecord,
)
from sandbox import Estate, Sandbox

PRIORITY = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low"}


def read(
    sandbox: Sandbox, table: str, fields: tuple[str, ...], query: str = ""
) -> list[dict[str, Any]]:
    response = requests.get(
        f"{sandbox.servicenow_url}/api/now/table/{table}",
        params={
            "sysparm_fields": ",".join(f for f in fields if not f.startswith("slm_")),
            "sysparm_exclude_reference_link": "true",
            "sysparm_query": query,
            "sysparm_limit": "10000",
        },
        auth=("integration.user", "secret"),
        timeout=10,
    )
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()["result"]
    return rows


def walk(estate: Estate) -> dict[str, list[str]]:
    """Component sys_id -> services whose "Depends on" walk reaches it (cycles included)."""
    children: dict[str, list[str]] = {}
    for relation in estate.relations:
        children.setdefault(relation.parent, []).append(relation.child)
    reached: dict[str, list[str]] = {}
    for service in estate.services:
        seen: set[str] = set()
        todo = list(children.get(service.sys_id, []))
        while todo:
            ci = todo.pop()
            if ci in seen:
                continue
            seen.add(ci)
            reached.setdefault(ci, []).append(service.sys_id)
            todo.extend(children.get(ci, []))
    return reached


@dataclass
class Mapped:
    people: MapResult
    services: tuple[Service, ...]
    unresolved: list[SkippedRecord]
    agreements: MapResult
    sla_records: MapResult
    csat: MapResult
    material: MapResult


@pytest.fixture(scope="module")
def mapped(mapping_sandbox: Sandbox, servicenow_mapping: SystemMapping) -> Mapped:
    sb, m = mapping_sandbox, servicenow_mapping
    estate = sb.estate

    def rows(entity: str, table: str, query: str = "") -> list[dict[str, Any]]:
        return read(sb, table, m.entity(entity).source_fields, query)

    reached = walk(estate)
    components = rows("component", "cmdb_ci", "sys_idIN" + ",".join(reached))
    for row in components:
        row["slm_service_ids"] = reached[row["sys_id"]]
        row["slm_depends_on"] = [r.child for r in estate.relations if r.parent == row["sys_id"]]
    incidents = {i.sys_id: i.business_service for i in estate.incidents}
    csat = rows("csat_response", "asmt_metric_result")
    for row in csat:
        row["slm_service_id"] = incidents.get(row["source_id"], "")
    fields = m.entity("material").source_fields
    material = [
        {**row, "slm_kind": "knowledge", "slm_service_id": row["cmdb_ci"]}
        for row in read(sb, "kb_knowledge", (*fields, "cmdb_ci"))
    ] + [
        {**row, "slm_kind": "problem", "slm_service_id": row["business_service"]}
        for row in read(sb, "problem", (*fields, "business_service"))
    ]
    people = m.map("person", rows("person", "sys_user"))
    unresolved: list[SkippedRecord] = []
    services = assemble(
        m.map("service", rows("service", "cmdb_ci_service")).of(ServiceDraft),
        m.map("component", components).of(ComponentDraft),
        people.by_id(Person),
        skipped=unresolved,
    )
    return Mapped(
        people=people,
        services=services,
        unresolved=unresolved,
        agreements=m.map("agreement", with_commitments(rows("agreement", "contract_sla"), estate)),
        sla_records=m.map("sla_record", rows("sla_record", "task_sla")),
        csat=m.map("csat_response", csat),
        material=m.map("material", material),
    )


def with_commitments(rows: list[dict[str, Any]], estate: Estate) -> list[dict[str, Any]]:
    """The fields the connector adds from each agreement's SPM commitment (seeded per agreement:
    its percentage, its service or component, Availability or SLA)."""
    seeded = {a.sys_id: a for a in estate.agreements}
    return [
        {
            **row,
            "slm_target_percentage": seeded[row["sys_id"]].target_percentage,
            "slm_applies_to": seeded[row["sys_id"]].applies_to,
            "slm_commitment_type": (
                "Availability" if seeded[row["sys_id"]].metric == "availability" else "SLA"
            ),
        }
        for row in rows
    ]


def email(estate: Estate, sys_id: str | None) -> str | None:
    return estate.person(sys_id).email if sys_id else None


def test_services_with_owners_by_email(mapped: Mapped, mapping_sandbox: Sandbox) -> None:
    """Every seeded service maps once (CSDM classes in, offerings out), with its tier and owner;
    a stock instance names no business owner or LT sponsor (they come from config)."""
    estate = mapping_sandbox.estate
    assert sorted(s.key for s in mapped.services) == sorted(s.sys_id for s in estate.services)
    by_key = {s.key: s for s in mapped.services}
    for seeded in estate.services:
        service = by_key[seeded.sys_id]
        assert (service.name, service.tier) == (seeded.name, seeded.tier)
        assert (service.owner.email if service.owner else None) == email(estate, seeded.owner)
        assert service.business_owner is None and service.lt_sponsor is None
    without = estate.deliberate["service_without_owner"]
    assert next(s for s in mapped.services if s.key == without).owner is None
    assert mapped.unresolved == []


def test_components_attached_to_their_services(mapped: Mapped, mapping_sandbox: Sandbox) -> None:
    """Each service carries the components its dependency walk reaches, with their CI owners."""
    estate = mapping_sandbox.estate
    reached = walk(estate)
    owners = {c.sys_id: email(estate, c.owner) for c in estate.components}
    for service in mapped.services:
        expected = {ci for ci, services in reached.items() if service.key in services}
        assert {c.key for c in service.components} == expected
        assert all(
            c.owner is not None and c.owner.email == owners[c.key] for c in service.components
        )
    cycle = estate.deliberate["relation_cycle"]
    component = next(c for s in mapped.services for c in s.components if c.key == cycle)
    assert component.depends_on  # the cycle is data, not an endless walk


def test_agreements_match_the_seed(mapped: Mapped, mapping_sandbox: Sandbox) -> None:
    """Every contract_sla maps with its kind, metric, target, window, priority and subject."""
    seeded = {a.sys_id: a for a in mapping_sandbox.estate.agreements}
    agreements = mapped.agreements.of(Agreement)
    assert mapped.agreements.skipped == []
    assert {a.key for a in agreements} == set(seeded)
    kinds = {"SLA": AgreementKind.SLA, "OLA": AgreementKind.OLA, "Underpinning contract": "UC"}
    for agreement in agreements:
        seed = seeded[agreement.key]
        assert agreement.kind == kinds[seed.type]
        assert agreement.metric == seed.metric
        assert agreement.target_percent == float(seed.target_percentage)
        assert agreement.window == seed.duration
        assert agreement.priority == (PRIORITY[seed.priority] if seed.priority else None)
        subject = agreement.service_key if seed.type == "SLA" else agreement.component_key
        assert subject == seed.applies_to


def test_sla_records_match_the_seed(mapped: Mapped, mapping_sandbox: Sandbox) -> None:
    """Every non-cancelled task_sla maps with its window, breach flag, service and priority."""
    estate = mapping_sandbox.estate
    incidents = {i.sys_id: i for i in estate.incidents}
    seeded = {r.sys_id: r for r in estate.sla_records if r.stage != "cancelled"}
    records = mapped.sla_records.of(SlaRecord)
    assert mapped.sla_records.skipped == []
    assert mapped.sla_records.excluded == len(estate.sla_records) - len(seeded)
    assert {r.key for r in records} == set(seeded)
    for record in records:
        seed, incident = seeded[record.key], incidents[seeded[record.key].task]
        assert record.agreement_key == seed.sla
        assert (record.start, record.stop) == (seed.start_time, seed.end_time)
        assert record.breached == seed.has_breached
        assert record.elapsed == seed.duration - timedelta(microseconds=seed.duration.microseconds)
        assert (record.task_ref, record.service_key) == (incident.number, incident.business_service)
        assert record.priority == PRIORITY[incident.priority]


def test_csat_matches_the_seed(mapped: Mapped, mapping_sandbox: Sandbox) -> None:
    """Every survey answer maps with its score and the service of its incident."""
    estate = mapping_sandbox.estate
    services = {i.sys_id: i.business_service for i in estate.incidents}
    answers = mapped.csat.of(CsatResponse)
    assert mapped.csat.skipped == []
    assert sorted((a.key, a.score, a.service_key) for a in answers) == sorted(
        (c.sys_id, float(c.actual_value), services[c.source_id]) for c in estate.csat
    )
    silent = estate.deliberate["service_without_csat"]
    assert all(a.service_key != silent for a in answers)


def test_material_matches_the_seed(mapped: Mapped, mapping_sandbox: Sandbox) -> None:
    """Knowledge articles and problems map as material of their services, open or not."""
    estate = mapping_sandbox.estate
    material = {m.key: m for m in mapped.material.of(Material)}
    assert mapped.material.skipped == []
    assert set(material) == {k.sys_id for k in estate.knowledge} | {
        p.sys_id for p in estate.problems
    }
    for problem in estate.problems:
        found = material[problem.sys_id]
        assert found.kind == MaterialKind.PROBLEM
        assert (found.number, found.title) == (problem.number, problem.short_description)
        assert found.open == (problem.state not in ("106", "107"))
        assert found.service_key == problem.business_service
    assert all(material[k.sys_id].kind == MaterialKind.KNOWLEDGE for k in estate.knowledge)


def test_people_keep_their_emails(mapped: Mapped, mapping_sandbox: Sandbox) -> None:
    """Every sys_user maps to a person by sys_id with name and email."""
    people = mapped.people.by_id(Person)
    assert {k: (p.name, p.email) for k, p in people.items()} == {
        p.sys_id: (p.name, p.email) for p in mapping_sandbox.estate.people
    }
