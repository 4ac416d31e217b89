"""Writing to the Jira stand-in: bulk create, validation like the real one, attachments,
watchers, transitions, rich text per API version, a localized sub-task type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests


def _task(label: str, n: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "fields": {
            "project": {"key": "SLM"},
            "issuetype": {"id": "10001"},
            "summary": f"Review {n}",
            "labels": [label],
            **fields,
        }
    }


def test_bulk_create_of_fifty_creates_all(cloud_http: Any, label: str) -> None:
    """50 issues in one bulk call are all created, in order."""
    response = cloud_http.post(
        "/rest/api/3/issue/bulk", json={"issueUpdates": [_task(label, n) for n in range(50)]}
    )
    assert response.status_code == 201
    body = response.json()
    assert len(body["issues"]) == 50 and body["errors"] == []
    keys = [issue["key"] for issue in body["issues"]]
    assert keys == sorted(keys, key=lambda k: int(k.split("-")[1]))


def test_bulk_create_of_fifty_one_is_refused_whole(cloud_http: Any, label: str) -> None:
    """Above 50 issues the bulk call answers 400 and creates nothing."""
    response = cloud_http.post(
        "/rest/api/3/issue/bulk", json={"issueUpdates": [_task(label, n) for n in range(51)]}
    )
    assert response.status_code == 400
    assert response.json()["issues"] == []
    found = cloud_http.get("/rest/api/3/search/jql", params={"jql": f"labels = {label}"}).json()
    assert found["issues"] == []


def test_bulk_partial_failure_is_reported_by_position(cloud_http: Any, label: str) -> None:
    """Valid elements are created; each invalid one is reported with its failedElementNumber."""
    updates = [
        _task(label, 0),
        _task(label, 1, labels=["has space"]),
        _task(label, 2),
        {"fields": {"project": {"key": "SLM"}, "issuetype": {"name": "Task"}}},
    ]
    response = cloud_http.post("/rest/api/3/issue/bulk", json={"issueUpdates": updates})
    assert response.status_code == 201
    body = response.json()
    assert len(body["issues"]) == 2
    assert [e["failedElementNumber"] for e in body["errors"]] == [1, 3]
    assert "labels" in body["errors"][0]["elementErrors"]["errors"]
    assert "summary" in body["errors"][1]["elementErrors"]["errors"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"foo": "bar"}, "foo"),
        ({"customfield_10030": {}}, "customfield_10030"),
        ({"assignee": {"accountId": "nobody"}}, "assignee"),
        ({"assignee": {"name": "jdoe"}}, "assignee"),
        ({"labels": ["two words"]}, "labels"),
        ({"description": "plain text on v3"}, "description"),
        ({"duedate": "31/12/2025"}, "duedate"),
    ],
)
def test_create_refuses_bad_fields_by_name(
    cloud_http: Any, label: str, fields: dict[str, Any], field: str
) -> None:
    """Unknown or unsettable fields, unknown users, spaced labels, non-ADF text: 400 on it."""
    response = cloud_http.post("/rest/api/3/issue", json=_task(label, **fields))
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_subtask_needs_a_parent(cloud_http: Any, label: str) -> None:
    """A sub-task without parent is refused with Jira's message."""
    response = cloud_http.post(
        "/rest/api/3/issue", json=_task(label, issuetype={"name": "Sub-task"})
    )
    assert response.status_code == 400
    assert "parent" in response.json()["errorMessages"][0]


def test_attachments_need_the_xsrf_header(
    cloud: Any, new_task: Callable[..., dict[str, Any]]
) -> None:
    """Without X-Atlassian-Token: no-check the upload is blocked (403); with it, it is stored."""
    key = new_task()["key"]
    url = f"{cloud.url}/rest/api/3/issue/{key}/attachments"
    files = {"file": ("pack.md", b"# Review pack\n", "text/markdown")}
    assert requests.post(url, files=files).status_code == 403
    response = requests.post(url, files=files, headers={"X-Atlassian-Token": "no-check"})
    assert response.status_code == 200
    assert response.json()[0]["filename"] == "pack.md" and response.json()[0]["size"] == 14
    ticket = next(t for t in cloud.app.created()["tickets"] if t["key"] == key)
    assert ticket["attachments"] == [{"filename": "pack.md", "size": 14}]


def test_watchers_are_added_by_account_id_on_cloud(
    cloud_http: Any, cloud: Any, new_task: Callable[..., dict[str, Any]]
) -> None:
    """Cloud adds watchers by accountId (a JSON string); a DC-style name is not a user there."""
    key = new_task()["key"]
    person = cloud.app.site.users[3]
    assert (
        cloud_http.post(f"/rest/api/3/issue/{key}/watchers", json=person.account_id).status_code
        == 204
    )
    assert cloud_http.post(f"/rest/api/3/issue/{key}/watchers", json=person.name).status_code == 404
    watchers = cloud_http.get(f"/rest/api/3/issue/{key}/watchers").json()
    assert [w["accountId"] for w in watchers["watchers"]] == [person.account_id]


def test_watchers_are_added_by_name_on_datacenter(dc_http: Any, datacenter: Any) -> None:
    """Data Center adds watchers by user name and lists them with name and key."""
    key = dc_http.post(
        "/rest/api/2/issue",
        json={"fields": {"project": {"key": "SLM"}, "issuetype": {"name": "Task"}, "summary": "w"}},
    ).json()["key"]
    person = datacenter.app.site.users[3]
    assert dc_http.post(f"/rest/api/2/issue/{key}/watchers", json=person.name).status_code == 204
    watcher = dc_http.get(f"/rest/api/2/issue/{key}/watchers").json()["watchers"][0]
    assert watcher["name"] == person.name and "accountId" not in watcher


def test_transitions_move_through_the_workflow(
    cloud_http: Any, new_task: Callable[..., dict[str, Any]]
) -> None:
    """To Do -> In Progress -> Done by transition id; moving to the current status is refused."""
    key = new_task()["key"]
    names = {
        t["name"]: t["id"]
        for t in cloud_http.get(f"/rest/api/3/issue/{key}/transitions").json()["transitions"]
    }
    assert set(names) == {"In Progress", "Done"}
    assert (
        cloud_http.post(
            f"/rest/api/3/issue/{key}/transitions",
            json={"transition": {"id": names["In Progress"]}},
        ).status_code
        == 204
    )
    assert (
        cloud_http.post(
            f"/rest/api/3/issue/{key}/transitions",
            json={"transition": {"id": names["In Progress"]}},
        ).status_code
        == 400
    )
    cloud_http.post(
        f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": names["Done"]}}
    )
    fields = cloud_http.get(
        f"/rest/api/3/issue/{key}", params={"fields": "status,resolution"}
    ).json()["fields"]
    assert fields["status"]["statusCategory"]["key"] == "done"
    assert fields["resolution"]["name"] == "Done"


def test_rich_text_is_adf_on_v3_and_wiki_on_v2(
    cloud_http: Any, dc_http: Any, new_task: Callable[..., dict[str, Any]]
) -> None:
    """Cloud v3 returns ADF, Cloud v2 the same text as wiki; DC takes and returns wiki strings."""
    key = new_task("Pack")["key"]
    v3 = cloud_http.get(f"/rest/api/3/issue/{key}", params={"fields": "description"}).json()[
        "fields"
    ]
    assert v3["description"]["type"] == "doc"
    v2 = requests.get(
        cloud_http.base_url + f"/rest/api/2/issue/{key}", params={"fields": "description"}
    ).json()
    assert v2["fields"]["description"] == "Pack"
    dc_key = dc_http.post(
        "/rest/api/2/issue",
        json={
            "fields": {
                "project": {"key": "SLM"},
                "issuetype": {"name": "Task"},
                "summary": "w",
                "description": "h1. Pack\n\n* one",
            }
        },
    ).json()["key"]
    assert (
        dc_http.get(f"/rest/api/2/issue/{dc_key}").json()["fields"]["description"]
        == "h1. Pack\n\n* one"
    )
    refused = dc_http.post(
        "/rest/api/2/issue",
        json={
            "fields": {
                "project": {"key": "SLM"},
                "issuetype": {"name": "Task"},
                "summary": "w",
                "description": {"type": "doc"},
            }
        },
    )
    assert refused.status_code == 400 and "description" in refused.json()["errors"]


def test_edit_sets_and_adds_labels_and_people(
    cloud_http: Any, cloud: Any, new_task: Callable[..., dict[str, Any]], label: str
) -> None:
    """PUT with fields and update verbs changes labels, assignee and the Accountable field."""
    key = new_task(labels=[label])["key"]
    person = cloud.app.site.users[2]
    response = cloud_http.put(
        f"/rest/api/3/issue/{key}",
        json={
            "fields": {
                "assignee": {"accountId": person.account_id},
                "customfield_10034": {"accountId": person.account_id},
                "duedate": "2025-12-31",
            },
            "update": {"labels": [{"add": "extra"}, {"remove": label}]},
        },
    )
    assert response.status_code == 204
    fields = cloud_http.get(f"/rest/api/3/issue/{key}").json()["fields"]
    assert fields["labels"] == ["extra"]
    assert (
        fields["assignee"]["accountId"]
        == fields["customfield_10034"]["accountId"]
        == person.account_id
    )
    ticket = next(t for t in cloud.app.created()["tickets"] if t["key"] == key)
    assert ticket["due_date"] == "2025-12-31" and ticket["accountable"]["email"] == person.email


def test_localized_subtask_type_name(jira_factory: Callable[..., Any]) -> None:
    """A site may name the sub-task type "Unteraufgabe"; create and JQL use the localized name."""
    site = jira_factory("cloud", index_lag_ms=0)
    site.app.site.rename_subtask_type("Unteraufgabe")
    http = requests.Session()
    types = http.get(f"{site.url}/rest/api/3/issue/createmeta/SLM/issuetypes").json()["issueTypes"]
    assert [t["name"] for t in types if t["subtask"]] == ["Unteraufgabe"]
    parent = http.post(f"{site.url}/rest/api/3/issue", json=_task("x")).json()["key"]
    child = http.post(
        f"{site.url}/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "SLM"},
                "issuetype": {"name": "Unteraufgabe"},
                "summary": "s",
                "parent": {"key": parent},
            }
        },
    )
    assert child.status_code == 201
    found = http.get(
        f"{site.url}/rest/api/3/search/jql", params={"jql": 'issuetype = "Unteraufgabe"'}
    ).json()
    assert len(found["issues"]) == 1
