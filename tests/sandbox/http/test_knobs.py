"""Knobs: rate limits, each fault kind, run-time changes, and /__sandbox/ introspection."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from sandbox import Sandbox

Factory = Callable[..., Sandbox]
INCIDENTS = "/api/now/table/incident"


def test_rate_limit_answers_429_with_servicenow_headers(
    sandbox_factory: Factory, sn_client: Any
) -> None:
    """Past the limit, ServiceNow answers 429 with Retry-After and X-RateLimit-* headers."""
    sn = sn_client(sandbox_factory(rate_limit="servicenow=3/60s"))
    statuses = [sn.get(INCIDENTS, sysparm_limit=1).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = sn.get(INCIDENTS, sysparm_limit=1)
    assert limited.json()["error"]["message"] == "Rate limit exceeded"
    headers = limited.headers
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert headers["X-RateLimit-Limit"] == "3"
    assert int(headers["X-RateLimit-Reset"]) >= int(time.time())
    assert len(headers["X-RateLimit-Rule"]) == 32


def test_proxy_errors(sandbox_factory: Factory, sn_client: Any) -> None:
    """The 5xx fault answers 502 / 503 / 504 with an HTML body, like a proxy in front."""
    sn = sn_client(sandbox_factory(faults="5xx=1,seed=1"))
    responses = [sn.get(INCIDENTS, sysparm_limit=1) for _ in range(12)]
    assert {r.status_code for r in responses} <= {502, 503, 504}
    assert len({r.status_code for r in responses}) > 1
    assert all(r.headers["Content-Type"].startswith("text/html") for r in responses)


def test_connection_reset(sandbox_factory: Factory, sn_client: Any) -> None:
    """The reset fault closes the connection without any response."""
    sn = sn_client(sandbox_factory(faults="reset=1"))
    with pytest.raises(requests.ConnectionError):
        sn.get(INCIDENTS, sysparm_limit=1)


def test_slow_response_exceeds_client_timeout(sandbox_factory: Factory) -> None:
    """The slow fault stalls the answer past a client's read timeout."""
    running = sandbox_factory(faults="slow=1,slow_s=1")
    with pytest.raises(requests.ReadTimeout):
        requests.get(running.servicenow_url + INCIDENTS, auth=("a", "b"), timeout=0.2)


def test_malformed_json(sandbox_factory: Factory, sn_client: Any) -> None:
    """The malformed fault answers 200 with a truncated JSON body."""
    sn = sn_client(sandbox_factory(faults="malformed=1"))
    response = sn.get(INCIDENTS, sysparm_limit=5)
    assert response.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_short_page_has_fewer_rows_although_more_follow(
    sandbox_factory: Factory, sn_client: Any
) -> None:
    """The short fault drops rows from a full page, as ACLs do; the Link header still names
    a next page, so only an empty page means the end."""
    sn = sn_client(sandbox_factory(faults="short=1"))
    response = sn.get(INCIDENTS, sysparm_limit=10)
    assert 0 < len(response.json()["result"]) < 10
    assert int(response.headers["X-Total-Count"]) > 10
    assert 'rel="next"' in response.headers["Link"]


def test_faults_are_reproducible_from_their_seed(sandbox_factory: Factory, sn_client: Any) -> None:
    """Two sandboxes with the same fault seed fail the same requests in the same way."""
    runs = []
    for _ in range(2):
        sn = sn_client(sandbox_factory(faults="5xx=0.3,seed=4"))
        runs.append([sn.get(INCIDENTS, sysparm_limit=1).status_code for _ in range(30)])
    assert runs[0] == runs[1]
    assert set(runs[0]) & {502, 503, 504} and 200 in runs[0]


def test_introspection_counts_requests_and_is_never_faulted(
    sandbox_factory: Factory, sn_client: Any
) -> None:
    """/__sandbox/ answers even when every request fails, and counts requests per route."""
    running = sandbox_factory(faults="5xx=1")
    sn = sn_client(running)
    sn.get(INCIDENTS, sysparm_limit=1)
    sn.get(INCIDENTS + "/abc")
    counts = requests.get(running.servicenow_url + "/__sandbox/requests", timeout=10).json()
    assert counts["by_route"] == {
        "GET /api/now/table/<table>": 1,
        "GET /api/now/table/<table>/<sys_id>": 1,
    }
    assert counts["total"] == 2 and counts["by_method"] == {"GET": 2}
    requests.post(running.servicenow_url + "/__sandbox/reset", timeout=10)
    after = requests.get(running.servicenow_url + "/__sandbox/requests", timeout=10).json()
    assert after["total"] == 0


def test_knobs_change_at_run_time(sandbox_factory: Factory, sn_client: Any) -> None:
    """POST /__sandbox/knobs switches faults and rate limits on and off while serving."""
    running = sandbox_factory()
    sn = sn_client(running)
    knobs_url = running.servicenow_url + "/__sandbox/knobs"
    assert requests.post(knobs_url, json={"faults": "5xx=1"}, timeout=10).status_code == 200
    assert sn.get(INCIDENTS, sysparm_limit=1).status_code >= 500
    requests.post(knobs_url, json={"faults": None, "rate_limit": "1/60s"}, timeout=10)
    assert [sn.get(INCIDENTS, sysparm_limit=1).status_code for _ in range(2)] == [200, 429]
    bad = requests.post(knobs_url, json={"faults": "explode=1"}, timeout=10)
    assert bad.status_code == 400 and "explode" in bad.json()["error"]


def test_reset_with_state_forgets_writes(sandbox_factory: Factory, sn_client: Any) -> None:
    """POST /__sandbox/reset?state=true restores the seeded data and empties created()."""
    running = sandbox_factory()
    sn = sn_client(running)
    sn.post("/api/now/table/task", {"short_description": "temporary"})
    assert running.servicenow.created()["records"]
    requests.post(running.servicenow_url + "/__sandbox/reset?state=true", timeout=10)
    assert running.servicenow.created()["records"] == {}
    assert sn.rows("task", sysparm_query="short_description=temporary") == []


def test_jira_rate_limit_uses_jira_headers(sandbox_factory: Factory) -> None:
    """The same harness answers Jira's 429 with Jira Cloud's header set (ISO reset time,
    remaining count and the reason), while ServiceNow keeps serving."""
    running = sandbox_factory(rate_limit="jira=1/60s")
    url = running.jira_url + "/rest/api/3/serverInfo"
    statuses = [requests.get(url, auth=("a", "b"), timeout=10) for _ in range(2)]
    assert [r.status_code for r in statuses] == [200, 429]
    headers = statuses[1].headers
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Reason"] == "jira-quota-global-based"
    assert headers["X-RateLimit-Reset"].endswith("Z") and "T" in headers["X-RateLimit-Reset"]
    assert int(headers["Retry-After"]) >= 1
    sn = requests.get(running.servicenow_url + INCIDENTS, auth=("a", "b"), timeout=10)
    assert sn.status_code == 200


def test_a_stand_ins_own_knobs_change_at_run_time_over_http(sandbox_factory: Factory) -> None:
    """`POST /__sandbox/knobs {"jira": {...}}` reaches the Jira stand-in's own knobs (a process
    started with `python -m sandbox serve` can be made unkind too); a stand-in without own knobs,
    or an unknown one, answers 400."""
    sandbox = sandbox_factory()
    knobs = f"{sandbox.jira_url}/__sandbox/knobs"
    zone = {"jira": {"time_zone": "America/Los_Angeles"}}
    assert requests.post(knobs, json=zone, timeout=5).status_code == 200
    myself = requests.get(
        f"{sandbox.jira_url}/rest/api/3/myself", auth=("a@example.com", "t"), timeout=5
    ).json()
    assert myself["timeZone"] == "America/Los_Angeles"
    wrong = requests.post(knobs, json={"jira": {"no_such_knob": 1}}, timeout=5)
    assert wrong.status_code == 400 and "no_such_knob" in wrong.json()["error"]
    other = f"{sandbox.servicenow_url}/__sandbox/knobs"
    assert requests.post(other, json={"servicenow": {"x": 1}}, timeout=5).status_code == 400
