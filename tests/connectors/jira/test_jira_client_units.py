"""The client and target against mocked Jira Cloud / Data Center answers (official examples);
every request sent is validated against Atlassian's spec by the `mocked` fixture."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from config import Settings
from connectors import AuthError, Pacer, RequestRejected, TicketRef
from connectors.jira import JiraClient, JiraTarget
from review import TicketKind, TicketSpec
from review.document import Document, paragraph

HOST = "https://your-domain.atlassian.net"
API = f"{HOST}/rest/api/3"


def _spec(key: str, parent: str | None = None) -> TicketSpec:
    return TicketSpec(
        key=key,
        parent_key=parent,
        kind=TicketKind.ACTIVITY if parent else TicketKind.REVIEW,
        title=f"Ticket {key}",
        body=Document(blocks=(paragraph("Body"),)),
    )


def _types(mocked: Any, example: Callable[..., Any]) -> None:
    body = example("GET", "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes", "200")
    body = {
        **body,
        "issueTypes": [
            {**body["issueTypes"][0], "id": "10001", "name": "Task", "subtask": False},
            {**body["issueTypes"][0], "id": "10002", "name": "Sub-task", "subtask": True},
        ],
    }
    mocked.get(f"{API}/issue/createmeta/SLM/issuetypes", json=body)


def test_detects_cloud_from_server_info(
    mocked: Any, example: Callable[..., Any], unit_settings: Callable[..., Settings]
) -> None:
    """With deployment `auto`, serverInfo's deploymentType picks Cloud (REST v3)."""
    info = {**example("GET", "/rest/api/3/serverInfo", "200"), "deploymentType": "Cloud"}
    mocked.get(f"{HOST}/rest/api/2/serverInfo", json=info)
    settings = unit_settings("auto")
    client = JiraClient.connect(settings.jira, settings.http)
    assert client.deployment.value == "cloud" and client.url("field") == f"{API}/field"


def test_bulk_failures_are_mapped_back_by_position(
    mocked: Any, example: Callable[..., Any], unit_settings: Callable[..., Settings]
) -> None:
    """Jira's official bulk answer with failed elements: each failure lands on its own spec,
    naming the field and the config key that set it; nothing is retried blindly."""
    _types(mocked, example)
    mocked.post(
        f"{API}/issue/bulk",
        json=example("POST", "/rest/api/3/issue/bulk", "400"),
        status=400,
    )
    target = JiraTarget(
        JiraClient.connect(unit_settings().jira, unit_settings().http), unit_settings()
    )
    parent = TicketRef(key="SLM-1", id="10000")
    results = target.create([_spec("k:a", "k:p"), _spec("k:b", "k:p")], {"k:p": parent})
    assert [r.ref for r in results] == [None, None]
    assert "issuetype" in (results[0].error or "") and "jira.issue_type" in (results[0].error or "")
    sent = json.loads(mocked.calls[-1].request.body)
    assert sent["issueUpdates"][0]["fields"]["parent"] == {"key": "SLM-1"}
    assert sent["issueUpdates"][0]["fields"]["labels"][:2] == ["k:a", "slm-sync"]


def test_bulk_success_uses_the_official_answer(
    mocked: Any, example: Callable[..., Any], unit_settings: Callable[..., Settings]
) -> None:
    """Created issues come back in order, with browse URLs."""
    _types(mocked, example)
    mocked.post(
        f"{API}/issue/bulk", json=example("POST", "/rest/api/3/issue/bulk", "201"), status=201
    )
    settings = unit_settings()
    target = JiraTarget(JiraClient.connect(settings.jira, settings.http), settings)
    results = target.create([_spec("k:a"), _spec("k:b")], {})
    assert [r.ref.key for r in results if r.ref] == ["ED-24", "ED-25"]
    assert results[0].ref and results[0].ref.url == f"{HOST}/browse/ED-24"


def test_find_quotes_keys_in_jql_and_pages_with_tokens(
    mocked: Any, unit_settings: Callable[..., Settings]
) -> None:
    """Lookup by key label sends quoted values, asks only for labels, and follows
    nextPageToken; a key with a quote cannot change the query."""
    pages = [
        {
            "issues": [{"id": "10", "key": "SLM-1", "fields": {"labels": ['k"1']}}],
            "nextPageToken": "t1",
        },
        {"issues": [{"id": "11", "key": "SLM-2", "fields": {"labels": ["k2"]}}], "isLast": True},
    ]
    mocked.post(f"{API}/search/jql", json=pages[0])
    mocked.post(f"{API}/search/jql", json=pages[1])
    settings = unit_settings()
    target = JiraTarget(JiraClient.connect(settings.jira, settings.http), settings)
    found = target.find(['k"1', "k2"])
    assert {k: r.key for k, r in found.items()} == {'k"1': "SLM-1", "k2": "SLM-2"}
    first = json.loads(mocked.calls[0].request.body)
    assert first["jql"] == 'project = "SLM" AND labels in ("k\\"1", "k2")'
    assert first["fields"] == ["labels"]
    assert json.loads(mocked.calls[1].request.body)["nextPageToken"] == "t1"


def test_forbidden_create_names_the_permission(
    mocked: Any, example: Callable[..., Any], unit_settings: Callable[..., Settings]
) -> None:
    """403 on bulk create fails with the permission the account most likely lacks."""
    _types(mocked, example)
    mocked.post(f"{API}/issue/bulk", json={"errorMessages": ["Forbidden"]}, status=403)
    settings = unit_settings()
    client = JiraClient.connect(settings.jira, settings.http)
    with pytest.raises(AuthError, match="Create issues"):
        client.bulk_create(
            [{"fields": {"project": {"key": "SLM"}, "issuetype": {"id": "10001"}, "summary": "x"}}]
        )


def test_field_error_names_field_and_config_key(
    mocked: Any, unit_settings: Callable[..., Settings]
) -> None:
    """A 400 on edit names the refused field and the config key that set it."""
    mocked.put(
        f"{API}/issue/SLM-1",
        json={"errorMessages": [], "errors": {"assignee": "User does not exist"}},
        status=400,
    )
    settings = unit_settings()
    client = JiraClient.connect(settings.jira, settings.http)
    with pytest.raises(RequestRejected) as raised:
        client.call(
            "PUT",
            "issue/SLM-1",
            what="issue SLM-1",
            permission=client_permission(),
            body={"fields": {}},
        )
    assert raised.value.field_errors == {"assignee": "User does not exist"}
    assert "review.people" in str(raised.value)


def client_permission() -> Any:
    from connectors.jira import Permission

    return Permission.EDIT


def test_quota_429_pauses_all_calls_then_retries(
    mocked: Any, unit_settings: Callable[..., Settings]
) -> None:
    """A 429 with a quota reason pauses every Jira call until the reset, then the call is
    retried (Retry-After honoured) and succeeds."""
    headers = {"Retry-After": "7", "RateLimit-Reason": "jira-quota-global-based"}
    mocked.get(
        f"{API}/field",
        json={"errorMessages": ["Rate limit exceeded."]},
        status=429,
        headers=headers,
    )
    mocked.get(f"{API}/field", json=[])
    settings = unit_settings()
    slept: list[float] = []
    now = [time.monotonic()]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(rate=10_000, burst=10, clock=lambda: now[0], sleep=sleep)
    client = JiraClient.connect(settings.jira, settings.http, pacer=pacer)
    assert client.call("GET", "field", what="fields", permission=client_permission()) == []
    assert sum(slept) >= 6  # the retry waited out the shared pause (Retry-After 7 s)


def test_data_center_uses_v2_and_start_at_paging(
    mocked: Any, unit_settings: Callable[..., Settings]
) -> None:
    """On Data Center, key lookups page /rest/api/2/search with startAt until total."""
    url = f"{HOST}/rest/api/2/search"
    issue = {"id": "10", "key": "SLM-1", "fields": {"labels": ["k1"]}}
    mocked.post(url, json={"startAt": 0, "maxResults": 1, "total": 2, "issues": [issue]})
    mocked.post(
        url,
        json={
            "startAt": 1,
            "maxResults": 1,
            "total": 2,
            "issues": [{**issue, "id": "11", "key": "SLM-2", "fields": {"labels": ["k2"]}}],
        },
    )
    settings = unit_settings("datacenter", email=None, api_token=None, personal_access_token="pat")
    target = JiraTarget(JiraClient.connect(settings.jira, settings.http), settings)
    assert set(target.find(["k1", "k2"])) == {"k1", "k2"}
    assert [json.loads(c.request.body)["startAt"] for c in mocked.calls] == [0, 1]
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer pat"
