"""Searching the Jira stand-in: Cloud keyset paging, DC offset paging, the JQL subset, index lag."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def _search(http: Any, jql: str, **params: Any) -> Any:
    return http.get("/rest/api/3/search/jql", params={"jql": jql, **params})


def _keys(http: Any, jql: str) -> list[str]:
    response = _search(http, jql, fields="summary", maxResults=100)
    assert response.status_code == 200, response.text
    return [issue["key"] for issue in response.json()["issues"]]


def test_cloud_keyset_paging_returns_each_issue_once(cloud_http: Any) -> None:
    """Following nextPageToken visits every ITSD request once; the last page has no token."""
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params = {
            "fields": "summary",
            "maxResults": 17,
            **({"nextPageToken": token} if token else {}),
        }
        body = _search(cloud_http, "project = ITSD ORDER BY key", **params).json()
        assert "startAt" not in body and "total" not in body
        seen += [issue["key"] for issue in body["issues"]]
        pages += 1
        token = body.get("nextPageToken")
        if token is None:
            assert body["isLast"] is True
            break
    assert len(seen) == len(set(seen)) == 120
    assert seen == sorted(seen, key=lambda k: int(k.split("-")[1]))
    assert pages == 8


def test_cloud_search_defaults_to_ids_only(cloud_http: Any) -> None:
    """Without `fields`, /search/jql returns only issue ids, as Cloud does."""
    body = _search(cloud_http, "project = ITSD", maxResults=3).json()
    assert body["issues"] and all(set(issue) == {"id"} for issue in body["issues"])


def test_cloud_token_of_another_query_is_refused(cloud_http: Any) -> None:
    """A nextPageToken only continues the query it came from."""
    token = _search(cloud_http, "project = ITSD", maxResults=5).json()["nextPageToken"]
    response = _search(cloud_http, "project = SLM", nextPageToken=token)
    assert response.status_code == 400
    assert response.json()["errorMessages"]


def test_cloud_post_search_takes_a_json_body(cloud_http: Any) -> None:
    """POST /search/jql reads jql, fields and maxResults from the body."""
    body = cloud_http.post(
        "/rest/api/3/search/jql",
        json={"jql": "project = ITSD ORDER BY key DESC", "fields": ["summary"], "maxResults": 2},
    ).json()
    assert [i["key"] for i in body["issues"]] == ["ITSD-120", "ITSD-119"]


@pytest.mark.parametrize("version", ["2", "3"])
def test_old_search_is_gone_on_cloud(cloud: Any, version: str) -> None:
    """/rest/api/{2,3}/search answers 410 with the message Cloud gives since 2025."""
    import requests

    response = requests.get(
        f"{cloud.url}/rest/api/{version}/search", params={"jql": "project = SLM"}
    )
    assert response.status_code == 410
    assert "/rest/api/3/search/jql" in response.json()["errorMessages"][0]


def test_datacenter_offset_paging_reports_total(dc_http: Any) -> None:
    """DC /rest/api/2/search pages with startAt/maxResults and reports the total."""
    seen: list[str] = []
    start = 0
    while True:
        body = dc_http.get(
            "/rest/api/2/search",
            params={
                "jql": "project = ITSD ORDER BY key",
                "startAt": start,
                "maxResults": 50,
                "fields": "summary",
            },
        ).json()
        assert body["total"] == 120 and body["startAt"] == start
        seen += [issue["key"] for issue in body["issues"]]
        start += len(body["issues"])
        if not body["issues"] or start >= body["total"]:
            break
    assert len(set(seen)) == 120


def test_datacenter_has_no_v3_and_no_search_jql(dc_http: Any) -> None:
    """Data Center serves REST v2 only: v3 paths and /search/jql are not found."""
    assert dc_http.get("/rest/api/3/serverInfo").status_code == 404
    assert dc_http.get("/rest/api/2/search/jql", params={"jql": "project = SLM"}).status_code == 404
    assert dc_http.get("/rest/api/2/serverInfo").json()["deploymentType"] == "Server"


def test_jql_operators_select_the_right_issues(
    cloud_http: Any, new_task: Callable[..., dict[str, Any]], label: str
) -> None:
    """project, issuetype, labels = / in, parent, key in, updated >= / <= and AND combine."""
    parent = new_task("parent", labels=[label])["key"]
    child = cloud_http.post(
        "/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "SLM"},
                "issuetype": {"name": "Sub-task"},
                "summary": "child",
                "parent": {"key": parent},
                "labels": [f"{label}-b"],
            }
        },
    ).json()["key"]
    scope = f"labels in (\"{label}\", '{label}-b')"
    assert _keys(cloud_http, f"{scope} AND project = SLM ORDER BY key") == [parent, child]
    assert _keys(cloud_http, f'{scope} AND issuetype = "Sub-task"') == [child]
    assert _keys(cloud_http, f"{scope} AND type = Task") == [parent]
    assert _keys(cloud_http, f"labels = {label}") == [parent]
    assert _keys(cloud_http, f"parent = {parent}") == [child]
    assert _keys(cloud_http, f"key in ({child}, {parent}) ORDER BY key DESC") == [child, parent]
    assert _keys(
        cloud_http, f'{scope} AND updated >= "2000-01-01 00:00" AND updated <= -0m ORDER BY updated'
    ) == [parent, child]
    assert _keys(cloud_http, f'{scope} AND updated <= "2000/01/01"') == []


def test_jql_strings_honour_quotes_and_backslashes(
    cloud_http: Any, new_task: Callable[..., dict[str, Any]], label: str
) -> None:
    """A label with a quote and a backslash is found with an escaped JQL string."""
    odd = f'{label}-"q\\b'
    key = new_task(labels=[odd])["key"]
    escaped = odd.replace("\\", "\\\\").replace('"', '\\"')
    assert _keys(cloud_http, f'labels = "{escaped}"') == [key]


@pytest.mark.parametrize(
    "jql",
    [
        "project = SLM AND labels = a OR project = ITSD",
        "summary ~ review",
        "assignee = currentUser()",
        "project = NOPE",
        "issuetype = Story",
        "key in (SLM-99999)",
        'updated >= "yesterday"',
        "project = SLM ORDER BY priority",
        "labels in (a, b",
        "",
    ],
)
def test_unsupported_or_invalid_jql_is_a_400(cloud_http: Any, jql: str) -> None:
    """JQL outside the subset, or naming what does not exist, answers 400 with errorMessages."""
    response = _search(cloud_http, jql)
    assert response.status_code == 400
    assert response.json()["errorMessages"][0]


def test_new_labels_reach_search_only_after_the_index_lag(
    jira_factory: Callable[..., Any], adf_doc: Callable[[str], dict[str, Any]]
) -> None:
    """Right after create, label search misses the issue and GET sees it; after the lag, both."""
    site = jira_factory("cloud", index_lag_ms=2000)
    now = [1000.0]
    site.app.site.clock = lambda: now[0]
    import requests

    http = requests.Session()
    created = http.post(
        f"{site.url}/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "SLM"},
                "issuetype": {"name": "Task"},
                "summary": "lag",
                "labels": ["lagged"],
            }
        },
    ).json()

    def found(**extra: Any) -> list[str]:
        body = http.get(
            f"{site.url}/rest/api/3/search/jql",
            params={"jql": "labels = lagged", "fields": "summary", **extra},
        ).json()
        return [i["key"] for i in body["issues"]]

    assert found() == []
    assert http.get(f"{site.url}/rest/api/3/issue/{created['key']}").json()["fields"]["labels"] == [
        "lagged"
    ]
    assert found(reconcileIssues=created["id"]) == [created["key"]]
    now[0] += 2.5
    assert found() == [created["key"]]
    http.put(
        f"{site.url}/rest/api/3/issue/{created['key']}",
        json={"update": {"labels": [{"remove": "lagged"}]}},
    )
    assert found() == [created["key"]]  # the index still has the old labels
    now[0] += 2.5
    assert found() == []
