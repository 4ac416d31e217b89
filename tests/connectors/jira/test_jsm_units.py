"""JSM source units: agreements from Atlassian's SLA example, the service registry and its
failures, JQL dates in the user's zone. No HTTP: a fake `JiraApi` answers."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from config import JiraSettings
from connectors import AuthError, Cursor, ReadError, RequestRejected, Stream, TransientError
from connectors.jira import Deployment, jsm
from connectors.jira.source import REGISTRY_PATH, JiraSource

from .conftest import REFERENCE

SLA_FIELDS = {
    "customfield_10030": "Time to resolution",
    "customfield_10031": "Time to first response",
}
FIELDS = jsm.JsmFields(SLA_FIELDS, service="customfield_10033", satisfaction=None)
ARI = "ari:cloud:graph::service/ca075ed7-6ea7-4563-acb3-000000000000/f51d7252-61e0-11ee-b94d-0001"
SERVICE = "b:" + base64.b64encode(ARI.encode()).decode()


def sla_example() -> dict[str, Any]:
    path = REFERENCE / "derived" / "jsm-servicedeskapi-2022-01.response-examples.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is not present beside the project")
    for line in path.read_text(encoding="utf-8").splitlines():
        example = json.loads(line)
        if example["path"] == "/rest/servicedeskapi/request/{issueIdOrKey}/sla":
            found: dict[str, Any] = example["example"]
            return found
    raise AssertionError("the JSM SLA example is missing from the reference data")


def request(priority: str, service: str | None = SERVICE) -> dict[str, Any]:
    """A request whose SLA fields hold Atlassian's example values."""
    values = dict(zip(SLA_FIELDS, reversed(sla_example()["values"]), strict=False))
    services = [{"id": service, "name": "Payroll"}] if service else []
    fields = {"priority": {"name": priority}, "customfield_10033": services, **values}
    return {"key": "HELPDESK-1", "fields": {**fields, "updated": "2015-10-10T10:00:00.000+0700"}}


def test_agreements_are_per_sla_goal_priority_and_service() -> None:
    """Atlassian's example: one agreement per SLA goal, keyed by field, goal, priority and
    service, named as people read it; the same goal on another priority is another agreement."""
    high = {a["key"]: a for a in jsm.agreements(request("High"), FIELDS)}
    low = {a["key"]: a for a in jsm.agreements(request("Low"), FIELDS)}
    assert set(high).isdisjoint(low)
    assert all(a["service_id"] == SERVICE and a["priority"] == "High" for a in high.values())
    goals = {(a["field_id"], a["goal_ms"]) for a in high.values()}
    example = {
        (field, cycle["goalDuration"]["millis"])
        for field, value in zip(SLA_FIELDS, reversed(sla_example()["values"]), strict=False)
        for cycle in [*value["completedCycles"], value["ongoingCycle"]]
    }
    assert goals == example
    # the SLA's own name (from the field value), the priority and the goal as people write it
    assert {a["name"] for a in high.values()} == {
        "Time To Resolution (High) 20h",
        "Time To Retrospective (High) 40h",
    }


def test_every_cycle_points_at_its_agreement() -> None:
    """Each SLA cycle's agreement key is one of the request's agreements."""
    issue = request("High")
    keys = {a["key"] for a in jsm.agreements(issue, FIELDS)}
    cycles = list(jsm.sla_cycles(issue, FIELDS))
    assert cycles and {c["agreement_key"] for c in cycles} == keys


def test_a_service_id_with_colons_cannot_collide() -> None:
    """The service id comes last and the priority is escaped: no two agreements share a key."""
    assert jsm.agreement_key("f", 1, "a:b", "c") != jsm.agreement_key("f", 1, "a", "b:c")
    assert jsm.agreement_key("f", 1, None, SERVICE).endswith(":-:" + SERVICE)


@pytest.mark.parametrize(
    ("goal_ms", "text"),
    [(14_400_000, "4h"), (1_800_000, "30m"), (5_400_000, "1h 30m"), (172_800_000, "2d")],
)
def test_goal_text(goal_ms: int, text: str) -> None:
    assert jsm.goal_text(goal_ms) == text


def test_registry_ids_decode_b_ids_and_answer_by_uuid() -> None:
    """ "b:" ids are base64 graph ARIs (the registry takes the ARI, answers with its uuid)."""
    assert jsm.registry_id(SERVICE) == ARI
    assert jsm.registry_uuid(SERVICE) == "f51d7252-61e0-11ee-b94d-0001"
    assert jsm.registry_id("b:not base64!") == "b:not base64!"


class FakeApi:
    """A JSM site with one request naming the service; the registry answers `registry`."""

    deployment = Deployment.CLOUD
    base_url = "https://site.example"

    def __init__(self, registry: Any, zone: tzinfo = UTC) -> None:
        self.registry = registry
        self.zone = zone
        self.calls: list[tuple[str, Mapping[str, Any] | None]] = []

    @property
    def time_zone(self) -> tzinfo:
        return self.zone

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        params = kwargs.get("params") or kwargs.get("body")
        self.calls.append((path, params))
        if path == "field":
            return [{"id": "customfield_10033", "name": "Affected services", "schema": {}}]
        if path == REGISTRY_PATH:
            if isinstance(self.registry, Exception):
                raise self.registry
            return self.registry
        return {"issues": [request("High")], "isLast": True}


def source(api: FakeApi) -> JiraSource:
    settings = JiraSettings(
        url="https://site.example", jsm_project="ITSD", requests_per_second=1000
    )
    return JiraSource(api, settings)  # type: ignore[arg-type]


def test_services_take_name_and_tier_from_the_registry() -> None:
    """Requests name the service; the documented registry gives its name and tier."""
    api = FakeApi(
        [
            {
                "id": "f51d7252-61e0-11ee-b94d-0001",
                "name": "Payroll (EU)",
                "serviceTier": {"level": 1},
            }
        ]
    )
    (page,) = source(api).read(Stream.SERVICES)
    assert page.errors == ()
    assert [(r["id"], r["name"], r["tier"]) for r in page.records] == [(SERVICE, "Payroll (EU)", 1)]
    registry = [params for path, params in api.calls if path == REGISTRY_PATH]
    assert registry == [{"serviceIds": [ARI]}]


@pytest.mark.parametrize(
    "failure",
    [
        RequestRejected("not found", system="jira", status=404),
        AuthError("Connect apps only", system="jira", status=403),
        TransientError("server error", system="jira", status=500),
    ],
    ids=["404", "403", "500"],
)
def test_a_failing_registry_degrades_to_the_requests_with_a_gap(failure: Exception) -> None:
    """404, 403 (the registry is for Connect apps) or 500: the services named on requests stand,
    the page carries the failure (a gap), the failure is logged once, nothing is raised."""
    with capture_logs() as logs:
        (page,) = source(FakeApi(failure)).read(Stream.SERVICES)
    assert [(r["id"], r["name"], r["tier"]) for r in page.records] == [(SERVICE, "Payroll", None)]
    (error,) = page.errors
    assert isinstance(error, ReadError) and "service registry" in error.reason
    assert error.service_ids == (SERVICE,), "a gap in that service's pack"
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "jsm.service_registry_failed"
    ]


def test_configured_services_need_no_registry() -> None:
    """jira.services names the services: neither requests nor the registry are asked."""
    api = FakeApi([])
    settings = JiraSettings(url="https://x.example", jsm_project="ITSD", services={"s1": "Payroll"})
    (page,) = JiraSource(api, settings).read(Stream.SERVICES)  # type: ignore[arg-type]
    assert [r["id"] for r in page.records] == ["s1"] and api.calls == []


def test_incremental_jql_dates_are_in_the_users_zone() -> None:
    """West of UTC, `updated >=` is written as the user's wall time (Jira reads it so)."""
    api = FakeApi([], zone=ZoneInfo("America/Los_Angeles"))
    jira = source(api)
    since = Cursor(datetime(2026, 1, 10, 18, 0, tzinfo=UTC).isoformat(), "ITSD-1")
    list(jira.read(Stream.CSAT, since=since))
    jql = next(p["jql"] for path, p in api.calls if path != "field" and p and "jql" in p)
    assert 'updated >= "2026-01-10 09:58"' in jql  # 18:00 UTC - 120 s overlap, PST
