"""People in the Jira stand-in, the real `jira` client against it, knobs and determinism."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import pytest
import requests
from jira import JIRA

from sandbox.estate.model import Estate
from sandbox.jira.jsm import service_id


def test_cloud_user_search_by_email_hides_private_emails(cloud_http: Any, estate: Estate) -> None:
    """Cloud finds people by email unless their email is hidden; then it is also absent."""
    visible = next(p for p in estate.people if p.in_jira and not p.jira_email_hidden)
    hidden = estate.person(estate.deliberate["person_email_hidden"])
    found = cloud_http.get("/rest/api/3/user/search", params={"query": visible.email}).json()
    assert [u["accountId"] for u in found] == [visible.jira_account_id]
    assert found[0]["emailAddress"] == visible.email
    assert cloud_http.get("/rest/api/3/user/search", params={"query": hidden.email}).json() == []
    by_name = cloud_http.get("/rest/api/3/user/search", params={"query": hidden.name}).json()
    assert by_name and "emailAddress" not in by_name[0]


def test_datacenter_user_search_by_username(dc_http: Any, estate: Estate) -> None:
    """DC finds people by `username` (matching name or email), emails always shown."""
    hidden = estate.person(estate.deliberate["person_email_hidden"])
    found = dc_http.get("/rest/api/2/user/search", params={"username": hidden.email}).json()
    assert [u["name"] for u in found] == [hidden.jira_name]
    assert found[0]["emailAddress"] == hidden.email


def test_person_not_in_jira_is_not_found(cloud_http: Any, estate: Estate) -> None:
    """The estate's person without a Jira account is not found by email."""
    missing = estate.person(estate.deliberate["person_not_in_jira"])
    assert cloud_http.get("/rest/api/3/user/search", params={"query": missing.email}).json() == []


def test_service_registry_answers_the_asked_services(
    cloud_http: Any, dc_http: Any, estate: Estate
) -> None:
    """The documented service registry (Cloud) returns the asked ARIs' entries with name and
    tier, names unchanged (quotes, non-ASCII), unknown ids left out; more than 20 ids is a 400;
    Data Center has no such route (404)."""
    aris = [base64.b64decode(service_id(s)[2:]).decode() for s in estate.services[:5]]
    path = "/rest/atlassian-connect/1/service-registry"
    rows = cloud_http.get(path, params={"serviceIds": [*aris, "ari:cloud:graph::service/x/y"]})
    assert [(r["name"], r["serviceTier"]["level"]) for r in rows.json()] == [
        (s.name, s.tier) for s in estate.services[:5]
    ]
    assert [r["id"] for r in rows.json()] == [a.rsplit("/", 1)[-1] for a in aris]
    assert cloud_http.get(path, params={"serviceIds": aris * 5}).status_code == 400
    special = estate.service(estate.deliberate["service_special_name"])
    ari = base64.b64decode(service_id(special)[2:]).decode()
    assert cloud_http.get(path, params={"serviceIds": [ari]}).json()[0]["name"] == special.name
    assert dc_http.get(path, params={"serviceIds": aris[:1]}).status_code == 404


@pytest.mark.parametrize(("flavor", "version"), [("cloud", "3"), ("datacenter", "2")])
def test_real_jira_client_creates_searches_and_comments(
    request: pytest.FixtureRequest, flavor: str, version: str, label: str
) -> None:
    """pycontribs/jira drives the sandbox: create an issue, find it by label, comment on it."""
    site = request.getfixturevalue("cloud" if flavor == "cloud" else "datacenter")
    client = JIRA(
        server=site.url,
        basic_auth=("slm-sync@example.com", "token"),
        options={"rest_api_version": version},
        max_retries=0,
        timeout=10,
    )
    assert client.deploymentType == ("Cloud" if flavor == "cloud" else "Server")
    description: Any = (
        "Review pack"
        if version == "2"
        else {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": "pack"}]}],
        }
    )
    issue = client.create_issue(
        fields={
            "project": {"key": "SLM"},
            "issuetype": {"name": "Task"},
            "summary": "Review of Payroll",
            "labels": [label],
            "description": description,
        }
    )
    jql = f"project = SLM AND labels = {label}"
    if flavor == "cloud":
        found = client.enhanced_search_issues(jql, fields=["summary", "labels"])
    else:
        found = client.search_issues(jql, fields="summary,labels")
    assert [i.key for i in found] == [issue.key]
    body: Any = (
        "Looks good"
        if version == "2"
        else {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": "ok"}]}],
        }
    )
    client.add_comment(issue.key, body)
    assert len(client.comments(issue.key)) == 1
    results = client.create_issues(
        [
            {
                "project": {"key": "SLM"},
                "issuetype": {"name": "Task"},
                "summary": "bulk",
                "labels": [label],
            }
        ]
    )
    assert results[0]["status"] == "Success"


@pytest.mark.parametrize(("flavor", "version"), [("cloud", "3"), ("datacenter", "2")])
def test_real_jira_client_runs_a_ticket_lifecycle(
    request: pytest.FixtureRequest, estate: Estate, flavor: str, version: str
) -> None:
    """Watch by email, attach, link, update labels, add a sub-task, assign, close: all through
    pycontribs/jira, as the connector will."""
    site = request.getfixturevalue("cloud" if flavor == "cloud" else "datacenter")
    client = JIRA(server=site.url, basic_auth=("slm-sync@example.com", "token"),
                  options={"rest_api_version": version}, max_retries=0, timeout=10)  # fmt: skip
    person = next(p for p in estate.people if p.in_jira and not p.jira_email_hidden)
    issue = client.create_issue(project="SLM", issuetype="Task", summary="Review", labels=["a"])
    other = client.create_issue(project="SLM", issuetype="Task", summary="Action")
    client.add_watcher(issue.key, person.email)
    assert [w.displayName for w in client.watchers(issue.key).watchers] == [person.name]
    assert client.add_attachment(issue.key, io.BytesIO(b"pack"), filename="pack.md").size == 4
    client.create_issue_link("Relates", issue.key, other.key)
    issue.update(fields={"summary": "Review 2025"}, update={"labels": [{"add": "b"}]})
    assert issue.fields.labels == ["a", "b"]
    child = client.create_issue(project="SLM", issuetype="Sub-task", summary="Measure",
                                parent={"key": issue.key})  # fmt: skip
    assert child.fields.parent.key == issue.key
    client.assign_issue(child.key, person.email)
    client.transition_issue(issue.key, "Done")
    done = client.issue(issue.key)
    assert done.fields.status.name == "Done"
    assert len(done.fields.issuelinks) == 1 and len(done.fields.subtasks) == 1
    assert client.issue(child.key).fields.assignee.displayName == person.name


def test_jira_rate_limit_answers_with_jira_headers(jira_factory: Callable[..., Any]) -> None:
    """Past the limit, Jira answers 429 with Retry-After, X-RateLimit-* and RateLimit-Reason."""
    site = jira_factory("cloud", rate_limit="jira=3/60s")
    statuses = [requests.get(f"{site.url}/rest/api/3/myself") for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    limited = statuses[-1]
    assert int(limited.headers["Retry-After"]) >= 1
    for header in (
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "RateLimit-Reason",
    ):
        assert header in limited.headers


def test_short_page_fault_shortens_a_search_page_but_paging_continues(
    jira_factory: Callable[..., Any],
) -> None:
    """With the ACL-like `short` fault, a page holds fewer issues than asked yet a token follows."""
    site = jira_factory("cloud", faults="short=1.0")
    body = requests.get(
        f"{site.url}/rest/api/3/search/jql", params={"jql": "project = ITSD", "maxResults": 10}
    ).json()
    assert 0 < len(body["issues"]) < 10
    assert body["nextPageToken"]


def test_same_seed_same_jira_content(jira_factory: Callable[..., Any]) -> None:
    """Two sites from the same estate serve identical ITSD requests."""
    bodies = []
    for _ in range(2):
        site = jira_factory("cloud")
        body = requests.get(
            f"{site.url}/rest/api/3/search/jql",
            params={"jql": "project = ITSD ORDER BY key", "fields": "*all", "maxResults": 100},
        ).json()
        bodies.append(
            [
                {
                    k: v
                    for k, v in i["fields"].items()
                    if k not in {"project", "issuetype", "status"}
                }
                | {"key": i["key"]}
                for i in body["issues"]
            ]
        )
    for first, second in zip(*bodies, strict=True):
        first.pop("watches"), second.pop("watches")
    assert _without_urls(bodies[0]) == _without_urls(bodies[1])


def _without_urls(value: Any) -> Any:
    """Drop self links (they carry each site's port)."""
    if isinstance(value, dict):
        return {
            k: _without_urls(v) for k, v in value.items() if k not in {"self", "_links", "iconUrl"}
        }
    if isinstance(value, list):
        return [_without_urls(v) for v in value]
    return value


def test_reset_restores_the_seeded_state(jira_factory: Callable[..., Any]) -> None:
    """POST /__sandbox/reset?state=true forgets created tickets; ITSD stays seeded."""
    site = jira_factory("cloud", index_lag_ms=0)
    requests.post(
        f"{site.url}/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "SLM"},
                "issuetype": {"name": "Task"},
                "summary": "gone soon",
            }
        },
    )
    assert len(requests.get(f"{site.url}/__sandbox/created").json()["tickets"]) == 1
    requests.post(f"{site.url}/__sandbox/reset", params={"state": "true"})
    assert requests.get(f"{site.url}/__sandbox/created").json()["tickets"] == []
    body = requests.get(
        f"{site.url}/rest/api/3/search/jql", params={"jql": "project = ITSD", "maxResults": 500}
    ).json()
    assert len(body["issues"]) == 120
