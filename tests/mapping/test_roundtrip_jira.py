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

from mapping import MapResult, ServiceDraft, SystemMapping, assemble
from review import Agreement, CsatResponse, Metric, Person, Service, SlaRecord
from sandbox import Sandbox

AUTH = ("slm-bot@example.com", "api-token")
EXTRA_FIELDS = ("customfield_10032", "customfield_10033")  # satisfaction, affected services
SLA_FIELDS = {
    "customfield_10030": "Time to resolution",
    "customfield_10031": "Time to first response",
}


def sla_cycles(issue: dict[str, Any], field_id: str, value: dict[str, Any]) -> list[dict[str, Any]]:
    """One sla_record per cycle of one SLA field value, as the connector emits them."""
    fields = issue.get("fields", {})
    common = {
        "issue_key": issue["key"],
        "field_id": field_id,
        "priority": (fields.get("priority") or {}).get("name"),
        "service_id": next((s["id"] for s in fields.get("customfield_10033") or []), None),
        "updated": fields.get("updated"),
    }
    cycles = [(c, "completed") for c in value.get("completedCycles", [])]
    if value.get("ongoingCycle"):
        cycles.append((value["ongoingCycle"], "ongoing"))
    return [
        {
            **common,
            "key": f"{issue['key']}:{field_id}:{n}",
            "cycle": kind,
            "goal_ms": cycle["goalDuration"]["millis"],
            "elapsed_ms": cycle["elapsedTime"]["millis"],
            "breached": cycle["breached"],
            "start": cycle["startTime"]["jira"],
            "stop": cycle["stopTime"]["epochMillis"] if "stopTime" in cycle else None,
        }
        for n, (cycle, kind) in enumerate(cycles, start=1)
    ]


def agreements_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    goals = {(r["field_id"], r["goal_ms"]) for r in records}
    return [
        {
            "key": f"{field_id}:{goal}",
            "name": f"{SLA_FIELDS[field_id]} {goal / 3_600_000:g}h",
            "field_id": field_id,
            "field_name": SLA_FIELDS[field_id],
            "goal_ms": goal,
            "metric": "response" if "first response" in SLA_FIELDS[field_id] else "resolution",
        }
        for field_id, goal in sorted(goals)
    ]


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
    listing = requests.get(f"{base}/jsm/api/site/v1/services", params={"size": 50}, auth=AUTH)
    users: dict[str, dict[str, Any]] = {}
    for service in listing.json()["services"]:
        if "owner" in service:
            user = requests.get(
                f"{base}/rest/api/3/user", params={"accountId": service["owner"]}, auth=AUTH
            )
            users[service["owner"]] = user.json()
    services = [
        {
            "id": s["id"],
            "name": s["name"],
            "tier": s.get("tier"),
            "owner_account_id": s.get("owner"),
            "owner_email": users.get(s.get("owner", ""), {}).get("emailAddress"),
            "owner_name": users.get(s.get("owner", ""), {}).get("displayName"),
        }
        for s in listing.json()["services"]
    ]
    issues = search_itsd(base)
    records = [
        record
        for issue in issues
        for field_id in SLA_FIELDS
        if issue["fields"].get(field_id)
        for record in sla_cycles(issue, field_id, issue["fields"][field_id])
    ]
    answers = [
        {
            "key": i["key"],
            "issue_key": i["key"],
            "rating": i["fields"]["customfield_10032"]["rating"],
            "service_id": next((s["id"] for s in i["fields"]["customfield_10033"]), None),
            "updated": i["fields"]["updated"],
        }
        for i in issues
        if i["fields"].get("customfield_10032")
    ]
    m = jira_mapping
    people = m.map("person", list(users.values())).by_id(Person)
    return Mapped(
        issues=issues,
        services=assemble(m.map("service", services).of(ServiceDraft), [], people),
        agreements=m.map("agreement", agreements_of(records)),
        sla_records=m.map("sla_record", records),
        csat=m.map("csat_response", answers),
    )


def test_jsm_services_with_owners(mapped: Mapped, mapping_sandbox: Sandbox) -> None:
    """Every JSM service maps with name, tier and its owner (hidden email: name, no email)."""
    estate = mapping_sandbox.estate
    assert [(s.name, s.tier) for s in mapped.services] == [
        (s.name, s.tier) for s in estate.services
    ]
    for seeded, service in zip(estate.services, mapped.services, strict=True):
        owner = estate.person(seeded.owner) if seeded.owner else None
        if owner is None:
            assert service.owner is None
            continue
        assert service.owner is not None and service.owner.name == owner.name
        assert service.owner.email == (None if owner.jira_email_hidden else owner.email)


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
        assert record.agreement_key.endswith(f":{int(goal.total_seconds() * 1000)}")
        if seed.end_time is not None:
            assert record.breached == seed.has_breached
        assert record.service_key == issues[record.task_ref]["fields"]["customfield_10033"][0]["id"]


def test_jsm_agreements_per_goal(mapped: Mapped) -> None:
    """Each (SLA field, goal) becomes one agreement with its window and the configured target."""
    agreements = mapped.agreements.of(Agreement)
    assert agreements and mapped.agreements.skipped == []
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
    issue = {"key": "HELPDESK-1", "fields": {"priority": {"name": "High"}}}
    records = [
        record
        for field_id, value in zip(SLA_FIELDS, reversed(jsm_sla_example["values"]), strict=False)
        for record in sla_cycles(issue, field_id, value)
    ]
    mapped = jira_mapping.map("sla_record", records).of(SlaRecord)
    response = [r for r in mapped if "customfield_10031" in r.key]
    assert [(r.breached, r.stop is None) for r in response] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    assert response[0].start == datetime(2015, 10, 9, 3, 45, 23, tzinfo=UTC)
    assert response[1].elapsed == timedelta(minutes=323)
