"""The stand-in is as unkind as real Jira where it matters: search lag on every field and for
new issues, JQL dates in the user's time zone, the assignable-user check, the per-issue write
limit, the text length limit, /mypermissions, bodiless 204s and strict watcher bodies.
Cloud answers go through `cloud_http`, which validates each against the official spec."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from sandbox.estate.model import Estate

from .conftest import BaseUrlSession, JiraSite, ValidatingSession, adf

TASK = {"project": {"key": "SLM"}, "issuetype": {"name": "Task"}}


def _create(http: requests.Session, url: str, **fields: Any) -> requests.Response:
    body = {"fields": {**TASK, "summary": "Review", **fields}}
    return http.post(f"{url}/rest/api/3/issue", json=body)


@pytest.fixture
def lagging(
    jira_factory: Callable[..., JiraSite],
) -> Iterator[tuple[JiraSite, list[float], requests.Session]]:
    """A Cloud site with a 2 s index lag and a hand-stepped clock."""
    site = jira_factory("cloud", index_lag_ms=2000)
    now = [1000.0]
    site.app.site.clock = lambda: now[0]
    yield site, now, requests.Session()


def _keys(http: requests.Session, url: str, jql: str, **extra: Any) -> list[str]:
    body = http.get(f"{url}/rest/api/3/search/jql", params={"jql": jql, **extra}).json()
    return [str(issue.get("key") or issue["id"]) for issue in body["issues"]]


# ---- search lag ------------------------------------------------------------------------------
def test_new_issues_reach_search_only_after_the_lag(
    lagging: tuple[JiraSite, list[float], requests.Session],
) -> None:
    """A new issue is found by no query (not even `project = SLM`) until the lag has passed;
    GET by key and `reconcileIssues` see it at once, the latter for its own search alone."""
    site, now, http = lagging
    created = _create(http, site.url).json()
    assert _keys(http, site.url, "project = SLM", fields="summary") == []
    assert http.get(f"{site.url}/rest/api/3/issue/{created['key']}").status_code == 200
    fresh = _keys(http, site.url, "project = SLM", fields="summary", reconcileIssues=created["id"])
    assert fresh == [created["key"]]
    assert _keys(http, site.url, "project = SLM", fields="summary") == []  # the index still lags
    now[0] += 2.5
    assert _keys(http, site.url, "project = SLM", fields="summary") == [created["key"]]


def test_every_field_lags_in_search(
    lagging: tuple[JiraSite, list[float], requests.Session],
) -> None:
    """After an edit, search still shows the old summary and status, and matches the old
    `updated`, until the lag has passed; GET shows the new values at once."""
    site, now, http = lagging
    key = _create(http, site.url, summary="Old summary").json()["key"]
    now[0] += 2.5
    http.put(f"{site.url}/rest/api/3/issue/{key}", json={"fields": {"summary": "New summary"}})
    http.post(f"{site.url}/rest/api/3/issue/{key}/transitions", json={"transition": {"id": "31"}})

    def seen() -> tuple[str, str]:
        body = http.get(
            f"{site.url}/rest/api/3/search/jql",
            params={"jql": f"key = {key}", "fields": "summary,status"},
        ).json()
        fields = body["issues"][0]["fields"]
        return fields["summary"], fields["status"]["name"]

    assert seen() == ("Old summary", "To Do")
    live = http.get(f"{site.url}/rest/api/3/issue/{key}", params={"fields": "summary"}).json()
    assert live["fields"]["summary"] == "New summary"
    now[0] += 2.5
    assert seen() == ("New summary", "Done")


def test_without_lag_everything_only_labels_lag(
    lagging: tuple[JiraSite, list[float], requests.Session],
) -> None:
    """With `lag_everything` off, a new issue is found at once, but not by its labels."""
    site, now, http = lagging
    site.app.realism.update({"lag_everything": False})
    key = _create(http, site.url, labels=["lag-off"]).json()["key"]
    assert key in _keys(http, site.url, "project = SLM", fields="summary")
    assert _keys(http, site.url, "labels = lag-off", fields="summary") == []
    now[0] += 2.5
    assert _keys(http, site.url, "labels = lag-off", fields="summary") == [key]


# ---- time zone -------------------------------------------------------------------------------
def test_jql_dates_are_wall_time_in_the_users_zone(
    jira_factory: Callable[..., JiraSite], jira_spec: Any
) -> None:
    """With the integration user in Los Angeles, `updated >= "<10 minutes ago, LA time>"` finds
    an issue changed just now, and the same instant written in UTC (7-8 hours "later" when read
    as LA time) finds nothing. /myself reports the zone."""
    site = jira_factory("cloud", index_lag_ms=0)
    site.app.realism.update({"time_zone": "America/Los_Angeles"})
    http = ValidatingSession(site.url, jira_spec, jira_spec)
    assert http.get("/rest/api/3/myself").json()["timeZone"] == "America/Los_Angeles"
    key = _create(http, site.url, labels=["tz"], description=adf("tz")).json()["key"]
    since = datetime.now(UTC) - timedelta(minutes=10)
    la = since.astimezone(ZoneInfo("America/Los_Angeles")).strftime("%Y-%m-%d %H:%M")
    utc = since.strftime("%Y-%m-%d %H:%M")
    assert _keys(http, site.url, f'labels = tz AND updated >= "{la}"', fields="summary") == [key]
    assert _keys(http, site.url, f'labels = tz AND updated >= "{utc}"', fields="summary") == []


def test_unknown_time_zone_knob_is_refused(jira_factory: Callable[..., JiraSite]) -> None:
    """A zone name Python does not know is a ValueError naming it; the knob keeps its value."""
    site = jira_factory("cloud", index_lag_ms=0)
    with pytest.raises(ValueError, match="Mars/Olympus"):
        site.app.realism.update({"time_zone": "Mars/Olympus"})
    assert site.app.realism.time_zone == "UTC"


# ---- assignable users ------------------------------------------------------------------------
def _not_assignable(estate: Estate) -> Any:
    return estate.person(estate.deliberate["person_not_assignable"])


def test_create_and_edit_refuse_a_user_who_cannot_be_assigned(
    cloud_http: ValidatingSession, estate: Estate, new_task: Callable[..., dict[str, Any]]
) -> None:
    """The seeded newcomer exists (user search finds them) but cannot be assigned: create,
    edit and PUT assignee answer 400 naming them, as Jira does."""
    person = _not_assignable(estate)
    assert person.in_jira and person.active
    found = cloud_http.get("/rest/api/3/user/search", params={"query": person.email}).json()
    assert [u["accountId"] for u in found] == [person.jira_account_id]
    expected = {"assignee": f"User '{person.jira_account_id}' cannot be assigned issues."}
    user = {"accountId": person.jira_account_id}
    refused = cloud_http.post(
        "/rest/api/3/issue", json={"fields": {**TASK, "summary": "x", "assignee": user}}
    )
    assert refused.status_code == 400 and refused.json()["errors"] == expected
    key = new_task()["key"]
    edit = cloud_http.put(f"/rest/api/3/issue/{key}", json={"fields": {"assignee": user}})
    assert edit.status_code == 400 and edit.json()["errors"] == expected
    assign = cloud_http.put(f"/rest/api/3/issue/{key}/assignee", json=user)
    assert assign.status_code == 400 and assign.json()["errors"] == expected


def test_datacenter_names_the_user_by_name(dc_http: Any, estate: Estate) -> None:
    """Data Center refuses the same user by user name."""
    person = _not_assignable(estate)
    body = {"fields": {**TASK, "summary": "x", "assignee": {"name": person.jira_name}}}
    refused = dc_http.post("/rest/api/2/issue", json=body)
    assert refused.status_code == 400
    assert refused.json()["errors"] == {
        "assignee": f"User '{person.jira_name}' cannot be assigned issues."
    }


# ---- per-issue write limit -------------------------------------------------------------------
def test_writes_to_one_issue_beyond_the_limit_answer_429(
    jira_factory: Callable[..., JiraSite],
) -> None:
    """Three writes per minute to one issue: the fourth is a 429 naming the per-issue limit,
    with Retry-After; another issue is not affected; after the window the write goes through."""
    site = jira_factory("cloud", index_lag_ms=0)
    now = [1000.0]
    site.app.site.clock = lambda: now[0]
    site.app.realism.update({"issue_write_limits": [(3, 60.0)]})
    http = BaseUrlSession(site.url)  # the spec lists no 429 per operation: not validated
    first, second = (_create(http, site.url).json()["key"] for _ in range(2))

    def comment(key: str) -> requests.Response:
        return http.post(f"/rest/api/3/issue/{key}/comment", json={"body": adf("hello")})

    assert [comment(first).status_code for _ in range(3)] == [201, 201, 201]
    limited = comment(first)
    assert limited.status_code == 429
    assert limited.headers["RateLimit-Reason"] == "jira-per-issue-on-write"
    assert int(limited.headers["Retry-After"]) >= 1
    assert comment(second).status_code == 201
    now[0] += 61
    assert comment(first).status_code == 201


# ---- text length -----------------------------------------------------------------------------
def test_text_over_32767_characters_is_refused(
    cloud_http: ValidatingSession, dc_http: Any, new_task: Callable[..., dict[str, Any]]
) -> None:
    """A description or comment longer than Jira's limit is a 400 with Jira's message, on v3
    (ADF) and v2 (wiki string) alike; exactly the limit is accepted on v2."""
    message = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
    long_adf = adf("x" * 33_000)
    refused = cloud_http.post(
        "/rest/api/3/issue", json={"fields": {**TASK, "summary": "x", "description": long_adf}}
    )
    assert refused.status_code == 400 and refused.json()["errors"] == {"description": message}
    key = new_task()["key"]
    comment = cloud_http.post(f"/rest/api/3/issue/{key}/comment", json={"body": long_adf})
    assert comment.status_code == 400 and comment.json()["errors"] == {"comment": message}
    body = {"fields": {**TASK, "summary": "x", "description": "y" * 32_768}}
    assert dc_http.post("/rest/api/2/issue", json=body).json()["errors"] == {"description": message}
    body["fields"]["description"] = "y" * 32_767
    assert dc_http.post("/rest/api/2/issue", json=body).status_code == 201


# ---- mypermissions ---------------------------------------------------------------------------
def test_mypermissions_answers_each_asked_key(
    jira_factory: Callable[..., JiraSite], jira_spec: Any
) -> None:
    """Cloud requires `permissions`; each asked key comes back with `havePermission`, false for
    the ones the knob denies; an unknown project is a 404."""
    site = jira_factory("cloud", index_lag_ms=0)
    site.app.realism.update({"denied_permissions": ["CREATE_ATTACHMENTS"]})
    http = ValidatingSession(site.url, jira_spec, jira_spec)
    assert http.get("/rest/api/3/mypermissions").status_code == 400
    answer = http.get(
        "/rest/api/3/mypermissions",
        params={"projectKey": "SLM", "permissions": "BROWSE_PROJECTS,CREATE_ATTACHMENTS"},
    )
    held = {k: v["havePermission"] for k, v in answer.json()["permissions"].items()}
    assert held == {"BROWSE_PROJECTS": True, "CREATE_ATTACHMENTS": False}
    missing = http.get(
        "/rest/api/3/mypermissions", params={"projectKey": "NOPE", "permissions": "EDIT_ISSUES"}
    )
    assert missing.status_code == 404


def test_datacenter_mypermissions_lists_all_without_a_filter(dc_http: Any) -> None:
    """Data Center answers every permission when `permissions` is left out."""
    answer = dc_http.get("/rest/api/2/mypermissions", params={"projectKey": "SLM"}).json()
    assert {"BROWSE_PROJECTS", "EDIT_ISSUES", "MANAGE_WATCHERS"} <= set(answer["permissions"])


# ---- 204s and watchers -----------------------------------------------------------------------
def test_no_content_answers_have_no_body_and_no_content_type(
    cloud_http: ValidatingSession, new_task: Callable[..., dict[str, Any]]
) -> None:
    """Edit, transition and add-watcher answer 204 with no body and no Content-Type."""
    key = new_task()["key"]
    answers = [
        cloud_http.put(f"/rest/api/3/issue/{key}", json={"fields": {"summary": "Renamed"}}),
        cloud_http.post(f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": "21"}}),
        cloud_http.post(f"/rest/api/3/issue/{key}/watchers", json=None),
    ]
    for answer in answers:
        assert answer.status_code == 204 and answer.content == b""
        assert "Content-Type" not in answer.headers


@pytest.mark.parametrize(
    "body",
    [
        b'{"accountId": "ACCOUNT"}',
        b"12345",
        b"ACCOUNT",  # not JSON: a bare account id
        b'["ACCOUNT"]',
    ],
)
def test_watcher_body_must_be_a_json_string(
    cloud_http: ValidatingSession,
    estate: Estate,
    new_task: Callable[..., dict[str, Any]],
    body: bytes,
) -> None:
    """Cloud takes the watcher as a JSON string accountId; an object, a number, bare text or a
    list is a 400, and the watcher is not added."""
    person = next(p for p in estate.people if p.in_jira and p.active)
    key = new_task()["key"]
    sent = body.replace(b"ACCOUNT", person.jira_account_id.encode())
    headers = {"Content-Type": "application/json"}
    answer = cloud_http.post(f"/rest/api/3/issue/{key}/watchers", data=sent, headers=headers)
    assert answer.status_code == 400
    ok = cloud_http.post(f"/rest/api/3/issue/{key}/watchers", json=person.jira_account_id)
    assert ok.status_code == 204
    watchers = cloud_http.get(f"/rest/api/3/issue/{key}/watchers").json()["watchers"]
    assert [w["accountId"] for w in watchers] == [person.jira_account_id]


def test_datacenter_watcher_is_a_json_string_user_name(dc_http: Any, estate: Estate) -> None:
    """Data Center takes a JSON string user name; an object is a 400."""
    person = next(p for p in estate.people if p.in_jira and p.active)
    body = {"fields": {**TASK, "summary": "x"}}
    key = dc_http.post("/rest/api/2/issue", json=body).json()["key"]
    url = f"/rest/api/2/issue/{key}/watchers"
    assert dc_http.post(url, json={"name": person.jira_name}).status_code == 400
    assert dc_http.post(url, json=person.jira_name).status_code == 204
