"""Review-engine fixtures: the sandbox's seeded estate converted to review entities.

`review` never imports `sandbox`; the conversion lives here, in the tests, as the mapping layer
would do it for real ServiceNow rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest

from review import (
    Agreement,
    AgreementKind,
    Component,
    CsatResponse,
    Material,
    MaterialKind,
    Metric,
    Person,
    RaciMatrix,
    RoleHolders,
    Service,
    SlaRecord,
    SourceRef,
)
from sandbox.estate import Estate, build_estate

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
TODAY = date(2025, 6, 1)
KINDS = {
    "SLA": AgreementKind.SLA,
    "OLA": AgreementKind.OLA,
    "Underpinning contract": AgreementKind.UC,
}
CLOSED_PROBLEM_STATES = {"106", "107"}


@dataclass
class ReviewEstate:
    """The seeded estate as the review engine sees it."""

    raw: Estate
    people: dict[str, Person]
    services: tuple[Service, ...]
    agreements: tuple[Agreement, ...]
    records: tuple[SlaRecord, ...]
    csat: tuple[CsatResponse, ...]
    materials: tuple[Material, ...]
    holders: RoleHolders = field(default_factory=RoleHolders)

    def service(self, key: str) -> Service:
        return next(s for s in self.services if s.key == key)


def _person(raw: Estate, sys_id: str | None) -> Person | None:
    if not sys_id:
        return None
    p = raw.person(sys_id)
    return Person(
        email=p.email, name=p.name, source=SourceRef(system="sn", table="sys_user", id=sys_id)
    )


def _services(raw: Estate) -> tuple[Service, ...]:
    children: dict[str, list[str]] = {}
    for relation in raw.relations:
        children.setdefault(relation.parent, []).append(relation.child)
    component_ids = {c.sys_id for c in raw.components}
    components = {
        c.sys_id: Component(
            key=c.sys_id,
            name=c.name,
            ci_class=c.sys_class_name,
            owner=_person(raw, c.owner),
            depends_on=tuple(k for k in children.get(c.sys_id, []) if k in component_ids),
        )
        for c in raw.components
    }
    services = []
    for s in raw.services:
        reached: list[str] = []
        todo = list(children.get(s.sys_id, []))
        while todo:
            key = todo.pop(0)
            if key in component_ids and key not in reached:
                reached.append(key)
                todo.extend(children.get(key, []))
        services.append(
            Service(
                key=s.sys_id,
                name=s.name,
                tier=s.tier,
                owner=_person(raw, s.owner),
                business_owner=_person(raw, s.business_owner),
                lt_sponsor=_person(raw, s.lt_sponsor),
                components=tuple(components[k] for k in reached),
            )
        )
    return tuple(services)


def _agreements(raw: Estate) -> tuple[Agreement, ...]:
    return tuple(
        Agreement(
            key=a.sys_id,
            name=a.name,
            kind=KINDS[a.type],
            metric=Metric(a.metric),
            target_percent=float(a.target_percentage),
            window=a.duration,
            priority=a.priority,
            service_key=a.applies_to if a.applies_to_table == "cmdb_ci_service" else None,
            component_key=a.applies_to if a.applies_to_table == "cmdb_ci" else None,
        )
        for a in raw.agreements
    )


def _records(raw: Estate) -> tuple[SlaRecord, ...]:
    incidents = {i.sys_id: i for i in raw.incidents}
    return tuple(
        SlaRecord(
            key=r.sys_id,
            agreement_key=r.sla,
            task_ref=incidents[r.task].number,
            service_key=incidents[r.task].business_service,
            priority=incidents[r.task].priority,
            start=r.start_time,
            stop=r.end_time,
            breached=r.has_breached,
            elapsed=r.duration,
            source=SourceRef(
                system="sn",
                table="incident",
                id=r.task,
                url=f"https://sn.example/incident.do?sys_id={r.task}",
            ),
        )
        for r in raw.sla_records
        if r.stage != "cancelled"
    )


def _csat(raw: Estate) -> tuple[CsatResponse, ...]:
    incidents = {i.sys_id: i for i in raw.incidents}
    return tuple(
        CsatResponse(
            key=c.sys_id,
            service_key=incidents[c.source_id].business_service,
            task_ref=incidents[c.source_id].number,
            score=float(c.actual_value),
            answered_at=c.sys_created_on,
        )
        for c in raw.csat
    )


def _materials(raw: Estate) -> tuple[Material, ...]:
    problems = [
        Material(
            key=p.sys_id,
            kind=MaterialKind.PROBLEM,
            title=p.short_description,
            number=p.number,
            service_key=p.business_service,
            url=f"https://sn.example/problem.do?sys_id={p.sys_id}",
            open=p.state not in CLOSED_PROBLEM_STATES,
        )
        for p in raw.problems
    ]
    articles = [
        Material(
            key=k.sys_id,
            kind=MaterialKind.KNOWLEDGE,
            title=k.short_description,
            number=k.number,
            service_key=k.business_service,
            url=f"https://sn.example/kb_view.do?sys_kb_id={k.sys_id}",
        )
        for k in raw.knowledge
    ]
    return (*problems, *articles)


@pytest.fixture(scope="session")
def estate() -> ReviewEstate:
    """The sandbox estate (seed 7, clock fixed at 2025-06-01) as review entities."""
    raw = build_estate(seed=7, now=FIXED_NOW)
    people = {q.sys_id: _person(raw, q.sys_id) for q in raw.people}
    return ReviewEstate(
        raw=raw,
        people={key: value for key, value in people.items() if value is not None},
        services=_services(raw),
        agreements=_agreements(raw),
        records=_records(raw),
        csat=_csat(raw),
        materials=_materials(raw),
    )


@pytest.fixture(scope="session")
def holders() -> RoleHolders:
    """Configured role holders: process owner, catalog owner, two LT members, default sponsor."""
    return RoleHolders(
        slm_process_owner=Person(email="bob.black@example.com", name="Bob Black"),
        service_catalog_owner=Person(email="cat.owner@example.com", name="Cathy Catalog"),
        lt_members=(
            Person(email="troy.travis@example.com", name="Troy Travis"),
            Person(email="lena.lead@example.com", name="Lena Lead"),
        ),
        default_lt_sponsor=Person(email="troy.travis@example.com", name="Troy Travis"),
    )


@pytest.fixture(scope="session")
def matrix() -> RaciMatrix:
    """The seed matrix shipped in config/raci.yaml."""
    from config import load_raci

    return load_raci()
