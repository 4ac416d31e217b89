"""Faults limited to routes (`only=`), and the `429` fault kind."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from sandbox import Sandbox
from sandbox.estate import Person
from sandbox.http import KnobError, RouteFilter, parse_faults

Factory = Callable[..., Sandbox]
AUTH = ("slm-sync@example.com", "token")


def _get(running: Sandbox, path: str, **params: str) -> requests.Response:
    return requests.get(running.jira_url + path, params=params, auth=AUTH, timeout=10)


def _is_json(response: requests.Response) -> bool:
    try:
        response.json()
    except requests.JSONDecodeError:
        return False
    return True


def test_only_limits_faults_to_the_named_path(sandbox_factory: Factory) -> None:
    """`malformed=1,only=<user search>` cuts every user search body and nothing else."""
    running = sandbox_factory(faults="malformed=1,only=/rest/api/3/user/search")
    email = _searchable(running)[0].email
    search = _get(running, "/rest/api/3/user/search", query=email)
    assert search.status_code == 200 and not _is_json(search)
    assert _is_json(_get(running, "/rest/api/3/field"))
    assert _is_json(_get(running, "/rest/api/3/serverInfo"))


def test_only_with_query_parameters_hits_one_person(sandbox_factory: Factory) -> None:
    """A route filter with query parameters faults the search for one email only."""
    running = sandbox_factory()
    first, second = [p.email for p in _searchable(running)[:2]]
    knobs = {"faults": f"malformed=1,only=GET /rest/api/3/user/search?query={first}"}
    requests.post(running.jira_url + "/__sandbox/knobs", json=knobs, timeout=10)
    assert not _is_json(_get(running, "/rest/api/3/user/search", query=first))
    found = _get(running, "/rest/api/3/user/search", query=second)
    assert [user["emailAddress"] for user in found.json()] == [second]


def _searchable(running: Sandbox) -> list[Person]:
    """Estate people a Cloud user search finds by email."""
    return [p for p in running.estate.people if p.in_jira and p.active and not p.jira_email_hidden]


def test_only_names_a_method_and_a_prefix(sandbox_factory: Factory) -> None:
    """`POST /path` spares GETs of the same path; a trailing `*` makes the path a prefix."""
    running = sandbox_factory(faults="5xx=1,only=POST /rest/api/3/search/jql|/rest/api/3/proj*")
    jql = running.jira_url + "/rest/api/3/search/jql"
    posted = requests.post(jql, json={"jql": "project = SLM"}, auth=AUTH, timeout=10)
    assert posted.status_code in (502, 503, 504)
    assert requests.get(jql, params={"jql": "project = SLM"}, auth=AUTH, timeout=10).ok
    assert _get(running, "/rest/api/3/project").status_code in (502, 503, 504)
    assert _get(running, "/rest/api/3/field").ok


def test_the_429_fault_answers_like_the_tool_before_doing_anything(
    sandbox_factory: Factory,
) -> None:
    """The `429` fault answers with the stand-in's rate-limit headers (Retry-After 1 s) and
    the request is not processed: a create under it leaves nothing behind."""
    running = sandbox_factory(faults="429=1,only=POST /rest/api/3/issue")
    types = _get(running, "/rest/api/3/issue/createmeta/SLM/issuetypes").json()["issueTypes"]
    task = next(t["id"] for t in types if not t["subtask"])
    fields = {"project": {"key": "SLM"}, "summary": "x", "issuetype": {"id": task}}

    def create() -> requests.Response:
        url = running.jira_url + "/rest/api/3/issue"
        return requests.post(url, json={"fields": fields}, auth=AUTH, timeout=10)

    answer = create()
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
    assert answer.headers["RateLimit-Reason"] == "jira-quota-global-based"
    assert running.jira.created()["tickets"] == []
    requests.post(running.jira_url + "/__sandbox/knobs", json={"faults": None}, timeout=10)
    assert create().status_code == 201 and len(running.jira.created()["tickets"]) == 1


def test_knob_api_shows_and_checks_routes(sandbox_factory: Factory) -> None:
    """GET /__sandbox/knobs lists the routes; a route without a leading '/' is refused."""
    running = sandbox_factory()
    url = running.jira_url + "/__sandbox/knobs"
    spec = "malformed=1,only=GET /rest/api/3/user/search?query=a@example.com"
    shown = requests.post(url, json={"faults": spec}, timeout=10).json()
    assert shown["faults"]["only"] == ["GET /rest/api/3/user/search?query=a@example.com"]
    bad = requests.post(url, json={"faults": "malformed=1,only=user/search"}, timeout=10)
    assert bad.status_code == 400 and "user/search" in bad.json()["error"]


@pytest.mark.parametrize(
    ("spec", "route"),
    [
        ("only=/a", RouteFilter("/a")),
        ("only=/a*", RouteFilter("/a", prefix=True)),
        ("only=post /a?x=1&y=", RouteFilter("/a", False, "POST", (("x", "1"), ("y", "")))),
    ],
)
def test_route_specs_parse(spec: str, route: RouteFilter) -> None:
    faults = parse_faults(f"malformed=1,{spec}")
    assert faults is not None and faults.only == (route,)


def test_an_empty_route_list_is_refused() -> None:
    with pytest.raises(KnobError, match="name at least one route"):
        parse_faults("malformed=1,only=")
