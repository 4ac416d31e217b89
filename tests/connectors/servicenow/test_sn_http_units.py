"""The connector's HTTP exchanges, checked with `responses` against recorded ServiceNow payloads
and the sysparm parameters of the official Table API description."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import yaml

from config import Settings
from connectors import AuthError, Pacer, ReadError, RetryEvent, RetryPolicy, Stream, TicketRef
from connectors.servicenow import Guard, ServiceNowSource, ServiceNowTarget, build_client
from connectors.servicenow.people import PeopleDirectory
from review import Document, TicketKind, TicketSpec

BASE = "https://acme.service-now.com"
TABLE_URL = f"{BASE}/api/now/table/task_sla"


@pytest.fixture(scope="module")
def recorded(reference_dir_module: Path) -> list[dict[str, Any]]:
    """77 real incidents (reference fields as {link, value}) from a developer instance."""
    path = reference_dir_module / "servicenow" / "recorded" / "Table_queryTableByName-default.json"
    rows: list[dict[str, Any]] = json.loads(path.read_text())["result"]
    return rows


@pytest.fixture(scope="module")
def spec_params(reference_dir_module: Path) -> dict[tuple[str, str], set[str]]:
    """(path, method) -> query parameter names the Quebec Table API description allows."""
    text = (
        reference_dir_module / "servicenow" / "servicenow-quebec.ballerina.openapi.yaml"
    ).read_text()
    paths = yaml.safe_load(text)["paths"]
    allowed: dict[tuple[str, str], set[str]] = {}
    for path, operations in paths.items():
        for method, operation in operations.items():
            if isinstance(operation, dict):
                names = {
                    p.get("name") for p in operation.get("parameters", []) if p.get("in") == "query"
                }
                allowed[(path, method)] = {str(n) for n in names}
    return allowed


@pytest.fixture(scope="module")
def reference_dir_module() -> Path:
    path = Path(__file__).resolve().parents[3].parent / "shared" / "reference"
    if not path.is_dir():
        pytest.skip("../shared/reference is not present beside the project")
    return path


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _settings() -> Settings:
    return Settings(
        servicenow={"instance": "acme", "username": "u", "password": "p", "page_size": 2}
    )


def _source(events: list[RetryEvent] | None = None) -> ServiceNowSource:
    settings = _settings()
    retry = RetryPolicy(max_attempts=4, observers=[events.append] if events is not None else [])
    guard = Guard(Pacer(1e6, burst=10), retry, concurrency=1)
    return ServiceNowSource(build_client(settings), settings.servicenow, guard)


def _sla_rows(recorded: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """task_sla-shaped rows built from real incident rows: strings, "" nulls, {link, value}."""
    rows = []
    for incident in recorded[:count]:
        rows.append(
            {
                "sys_id": incident["sys_id"],
                "sys_updated_on": incident["sys_updated_on"],
                "task": {
                    "link": f"{BASE}/api/now/table/task/{incident['sys_id']}",
                    "value": incident["sys_id"],
                },
                "stage": "completed",
                "has_breached": "false" if incident["made_sla"] == "true" else "true",
                "end_time": "",
                "task.business_service": copy.deepcopy(incident["business_service"]),
                "task.priority": incident["priority"],
            }
        )
    return sorted(rows, key=lambda r: (r["sys_updated_on"], r["sys_id"]))


def _params(call: Any) -> dict[str, str]:
    return {
        k: v[0]
        for k, v in parse_qs(urlsplit(call.request.url).query, keep_blank_values=True).items()
    }


def test_list_requests_use_documented_parameters_and_keyset_order(
    mocked: responses.RequestsMock, recorded: list[dict[str, Any]], spec_params: dict[Any, set[str]]
) -> None:
    """Each page asks for explicit fields, no reference links, no count, in (sys_updated_on,
    sys_id) order after the previous page's last row; only documented parameters are sent,
    and `{link, value}` references come out as plain sys_ids."""
    rows = _sla_rows(recorded, 3)
    for body in (rows[:2], rows[2:], []):
        mocked.get(TABLE_URL, json={"result": body})
    pages = list(_source().read(Stream.SLA_RECORDS))
    # the read ended long after its last row: a last, empty page moves the cursor to the bound
    assert [len(p.records) for p in pages] == [2, 1, 0]
    assert pages[2].cursor is not None and pages[2].cursor.id == ""
    assert pages[0].records[0]["task"] == rows[0]["task"]["value"]
    first, second, _ = (_params(c) for c in mocked.calls)
    for params in (first, second):
        assert set(params) <= spec_params[("/api/now/table/{tableName}", "get")]
        assert params["sysparm_exclude_reference_link"] == "true"
        assert params["sysparm_no_count"] == "true"
        assert "task.business_service" in params["sysparm_fields"].split(",")
        assert params["sysparm_query"].endswith("ORDERBYsys_updated_on^ORDERBYsys_id")
    last = rows[1]
    assert (
        f"sys_updated_on>={last['sys_updated_on']}^sys_id>{last['sys_id']}"
        f"^ORsys_updated_on>{last['sys_updated_on']}" in second["sysparm_query"]
    )


def test_a_row_without_sys_updated_on_is_reported_by_sys_id(
    mocked: responses.RequestsMock, recorded: list[dict[str, Any]]
) -> None:
    """A record missing its keyset field is skipped and reported with its sys_id; the
    rest of the page is read."""
    rows = _sla_rows(recorded, 2)
    broken = rows[0]["sys_id"]
    rows[0] = {k: v for k, v in rows[0].items() if k != "sys_updated_on"}
    mocked.get(TABLE_URL, json={"result": rows})
    mocked.get(TABLE_URL, json={"result": []})
    page = next(_source().read(Stream.SLA_RECORDS))
    assert [r["sys_id"] for r in page.records] == [rows[1]["sys_id"]]
    (error,) = page.errors
    assert isinstance(error, ReadError)
    assert (error.table, error.record_id) == ("task_sla", broken)
    assert "sys_updated_on" in error.reason


def test_429_is_retried_after_the_instance_retry_after(
    mocked: responses.RequestsMock, recorded: list[dict[str, Any]]
) -> None:
    """A 429 with Retry-After: 7 is retried, never sooner than 7 seconds (waits are skipped
    in tests, the decision is not)."""
    mocked.get(
        TABLE_URL,
        status=429,
        json={"error": {"message": "Rate limit exceeded"}, "status": "failure"},
        headers={"Retry-After": "7", "X-RateLimit-Limit": "20", "X-RateLimit-Rule": "r1"},
    )
    mocked.get(TABLE_URL, json={"result": _sla_rows(recorded, 1)})
    mocked.get(TABLE_URL, json={"result": []})
    events: list[RetryEvent] = []
    source = _source(events)
    clock = [0.0]
    source.guard.pacer = Pacer(
        1e6, burst=10, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s)
    )
    pages = list(source.read(Stream.SLA_RECORDS))
    assert len(pages[0].records) == 1
    assert events[0].status == 429 and events[0].wait >= 7


def test_cut_off_json_is_retried(
    mocked: responses.RequestsMock, recorded: list[dict[str, Any]]
) -> None:
    """A 200 whose JSON body is cut in half (a proxy dropped the connection) is read again."""
    good = json.dumps({"result": _sla_rows(recorded, 2)})
    mocked.get(TABLE_URL, body=good[: len(good) // 2], content_type="application/json")
    mocked.get(TABLE_URL, body=good, content_type="application/json")
    mocked.get(TABLE_URL, json={"result": []})
    pages = list(_source().read(Stream.SLA_RECORDS))
    assert sum(len(p.records) for p in pages) == 2


def test_403_names_the_table_and_the_role(mocked: responses.RequestsMock) -> None:
    """A 403 on contract_sla is a fatal AuthError naming the table and the usual role."""
    mocked.get(
        f"{BASE}/api/now/table/contract_sla",
        status=403,
        json={"error": {"message": "Insufficient rights"}, "status": "failure"},
    )
    with pytest.raises(AuthError) as caught:
        list(_source().read(Stream.AGREEMENTS))
    assert "contract_sla" in str(caught.value) and "sla_admin" in str(caught.value)


def test_writes_send_only_documented_parameters(
    mocked: responses.RequestsMock, spec_params: dict[Any, set[str]]
) -> None:
    """Create (POST) and update (GET then PATCH) use only the parameters the Table API
    documents for them, and a failed create after a 502 is not sent twice."""
    settings = _settings()
    client = build_client(settings)
    guard = Guard(Pacer(1e6, burst=10), RetryPolicy(max_attempts=3), concurrency=1)
    target = ServiceNowTarget(
        client,
        settings.servicenow,
        guard,
        PeopleDirectory(client, guard, settings.servicenow),
        BASE,
    )
    sys_id = "1c741bd70b2322007518478d83673af3"
    url = f"{BASE}/api/now/table/vtb_task"
    mocked.post(url, json={"result": {"sys_id": sys_id, "number": "VTB0001"}}, status=201)
    spec = TicketSpec(key="slm:2026:cycle", kind=TicketKind.CYCLE, title="Cycle", body=Document())
    ticket = TicketRef("VTB0001", sys_id, f"{BASE}/vtb_task.do?sys_id={sys_id}")
    assert target.create([spec], {})[0].ref == ticket
    mocked.get(f"{url}/{sys_id}", json={"result": {"sys_id": sys_id, "short_description": "Old"}})
    mocked.patch(f"{url}/{sys_id}", json={"result": {"sys_id": sys_id}})
    target.update(TicketRef("VTB0001", sys_id), spec)
    post, get, patch = mocked.calls
    assert set(_params(post)) <= spec_params[("/api/now/table/{tableName}", "post")]
    assert set(_params(get)) <= spec_params[("/api/now/table/{tableName}/{sys_id}", "get")]
    assert set(_params(patch)) <= spec_params[("/api/now/table/{tableName}/{sys_id}", "patch")]
    body = patch.request.body
    assert isinstance(body, bytes | str) and json.loads(body)["short_description"] == "Cycle"
    mocked.replace(responses.POST, url, status=502, body="<html>Bad Gateway</html>")
    failed = target.create([spec], {})[0]
    assert failed.ref is None and failed.error is not None
    assert sum(1 for c in mocked.calls if c.request.method == "POST") == 2
