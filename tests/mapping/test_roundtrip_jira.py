"""Round trip for JSM: records shaped as the Jira connector emits them map to the seeded estate.

The records are built here from the sandbox's ITSD requests (search results with the SLA,
satisfaction and affected-services fields) and from Atlassian's official SLA example, in the
shapes fixed for the connector (see mapping/README.md, "Raw records").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from connectors.jira import jsm
from connectors.jira.jsm import JsmFields, registry_id, registry_uuid
from mapping import MapResult, ServiceDraft, SystemMapping, assemble
from review import Agreement, CsatResponse, Metric, Service, SlaRecord
from sandbox import Sandbox

AUTH = ("slm-bot@example.com", "api-token")
EXTRA_FIELDS = ("customfield_10032", "customfield_10033")  # satisfaction, affected services
SLA_FIELDS = {
    "customfield_10030": "Time to resolution",
    "customfield_10031": "Time to first response",
}


JSM_FIELDS = JsmFields(
    sla=SLA_FIELDS, service="customfield_10033", satisfaction="customfield_10032"
)


def unique(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records once per key, as the connector emits agreements repeated across requests."""
    return list({r["key"]: r for r in records}.values())


@dataclass
class Mapped:
    issues: list[dict[str, Any]]
    services: tuple[Service, ...]
    agreements: MapResult
    sla_records: MapResult
    csat: MapResult


def search_itsd(base: str) -> list[dict[str, Any]]:
    issues: list[dict[str, Any]] = []
    body: dict[str, Any] = {
        "jql": "project = ITSD",
        "fields": ["priority", "updated", "description", *SLA_FIELDS, *EXTRA_FIELDS],
        "maxResults": 100,
    }
    while True:
        page = requests.post(f"{base}/rest/api/3/search/jql", json=body, auth=AUTH, timeout=10)
        page.raise_for_status()
        issues += page.json()["issues"]
        if page.json().get("isLast", True):
            return issues
        body["nextPageToken"] = page.json()["nextPageToken"]


@pytest.fixture(scope="module")
def mapped(mapping_sandbox: Sandbox, jira_mapping: SystemMapping) -> Mapped:
    base = mapping_sandbox.jira_url
    issues = search_itsd(base)
    named = {
        service["id"]: service["name"]
        for issue in issues
        for service in issue["fields"].get("customfield_10033") or []
    }
    registry = requests.get(
        f"{base}/rest/atlassian-connect/1/service-registry",
        params={"serviceIds": [registry_id(i) for i in named][:20]},
        auth=AUTH,
        timeout=10,
    ).json()
    tiers = {row["id"]: row["serviceTier"]["level"] for row in registry}
    services = [{"id": i, "name": n, "tier": tiers.get(registry_uuid(i))} for i, n in named.items()]
    records = [r for issue in issues for r in jsm.sla_cycles(issue, JSM_FIELDS)]
    agreements = unique([a for issue in issues for a in jsm.agreements(issue, JSM_FIELDS)])
    answers = [a for a in (jsm.csat(issue, JSM_FIELDS) for issue in issues) if a]
    m = jira_mapping
    return Mapped(
        issues=issues,
        services=assemble(m.map("service", services).of(ServiceDraft), [], {}),
        agreements=m.map("agreement", agreements),
        sla_records=m.map("sla_record", records),
        csat=m.map("csat_response", answers),
    )


def test_jsm_services_named_on_requests_with_registry_tiers(
    mapped: Mapped, mapping_sandbox: Sandbox
) -> None:
    """Services the requests name map with their name and the registry's tier; no owner (no
    JSM API names one)."""
    seeded = {s.name: s.tier for s in mapping_sandbox.estate.services}
    assert mapped.services
    for service in mapped.services:
        assert service.tier == seeded[service.name]
        assert service.owner is None


def test_jsm_sla_cycles_match_the_seeded_task_slas(
    mapped: Mapped, mapping_sandbox: Sandbox
) -> None:
    """Each JSM SLA cycle maps with the start, stop, breach flag and goal of its seeded record."""
    estate = mapping_sandbox.estate
    by_number = {i.number: i for i in estate.incidents}
    agreements = {a.sys_id: a for a in estate.agreements}
    records = mapped.sla_records.of(SlaRecord)
    assert mapped.sla_records.skipped == []
    assert len(records) > 100
    issues = {i["key"]: i for i in mapped.issues}
    for record in records:
        description = issues[record.task_ref]["fields"]["description"]
        text = description if isinstance(description, str) else str(description)
        incident = next(by_number[n] for n in by_number if n in text)
        metric = "response" if "10031" in record.agreement_key else "resolution"
        seed = next(
            r
            for r in estate.sla_records
            if r.task == incident.sys_id
            and agreements[r.sla].type == "SLA"
            and agreements[r.sla].metric == metric
        )
        assert record.start == seed.start_time
        assert record.stop == seed.end_time
        goal = agreements[seed.sla].duration
        assert goal is not None
        assert f":{int(goal.total_seconds() * 1000)}:" in record.agreement_key
        if seed.end_time is not None:
            assert record.breached == seed.has_breached
        assert record.service_key == issues[record.task_ref]["fields"]["customfield_10033"][0]["id"]


def test_jsm_agreements_per_goal(mapped: Mapped) -> None:
    """Each (SLA field, goal, priority, service) becomes one agreement of that service, with its
    window, priority and the configured target; its SLA records point at it."""
    agreements = mapped.agreements.of(Agreement)
    assert agreements and mapped.agreements.skipped == []
    by_key = {a.key: a for a in agreements}
    for record in mapped.sla_records.of(SlaRecord):
        agreement = by_key[record.agreement_key]
        assert (agreement.service_key, agreement.priority) == (record.service_key, record.priority)
    keys = {r.agreement_key for r in mapped.sla_records.of(SlaRecord)}
    assert {a.key for a in agreements} == keys
    for agreement in agreements:
        assert agreement.target_percent == 95
        assert agreement.window == timedelta(milliseconds=int(agreement.key.split(":")[1]))
        expected = Metric.RESPONSE if "10031" in agreement.key else Metric.RESOLUTION
        assert agreement.metric == expected


def test_jsm_satisfaction(mapped: Mapped, mapping_sandbox: Sandbox) -> None:
    """Satisfaction ratings map as CSAT answers on the request's service."""
    answers = mapped.csat.of(CsatResponse)
    assert answers and mapped.csat.skipped == []
    assert all(1 <= a.score <= 5 and a.scale_max == 5 and a.service_key for a in answers)


def test_official_jsm_sla_example(
    jsm_sla_example: dict[str, Any], jira_mapping: SystemMapping
) -> None:
    """Atlassian's SLA example: 2 completed + 1 ongoing cycle per SLA, +0700 times read as UTC."""
    values = dict(zip(SLA_FIELDS, reversed(jsm_sla_example["values"]), strict=False))
    issue = {"key": "HELPDESK-1", "fields": {"priority": {"name": "High"}, **values}}
    records = list(jsm.sla_cycles(issue, JSM_FIELDS))
    mapped = jira_mapping.map("sla_record", records).of(SlaRecord)
    response = [r for r in mapped if "customfield_10031" in r.key]
    assert [(r.breached, r.stop is None) for r in response] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    assert response[0].start == datetime(2015, 10, 9, 3, 45, 23, tzinfo=UTC)
    assert response[1].elapsed == timedelta(minutes=323)
