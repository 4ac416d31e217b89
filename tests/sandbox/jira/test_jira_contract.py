"""Every Cloud response shape the connectors rely on validates against Atlassian's spec.

The `cloud_http` session validates each response automatically; these tests make sure each
endpoint is exercised at least once, including its error answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_site_metadata_matches_the_spec(cloud_http: Any) -> None:
    """serverInfo, myself, field, project(s), issuetype and link types have the official shapes."""
    info = cloud_http.get("/rest/api/3/serverInfo").json()
    assert info["deploymentType"] == "Cloud"
    assert cloud_http.get("/rest/api/3/myself").json()["accountId"]
    fields = {f["id"]: f for f in cloud_http.get("/rest/api/3/field").json()}
    assert (
        fields["customfield_10030"]["schema"]["custom"] == "com.atlassian.servicedesk:sd-sla-field"
    )
    assert (
        fields["customfield_10032"]["schema"]["custom"]
        == "com.atlassian.servicedesk:sd-request-feedback"
    )
    assert {p["key"] for p in cloud_http.get("/rest/api/3/project").json()} == {"SLM", "ITSD"}
    project = cloud_http.get("/rest/api/3/project/SLM").json()
    assert {t["name"] for t in project["issueTypes"]} == {"Task", "Sub-task", "Epic"}
    assert cloud_http.get("/rest/api/3/issuetype").json()
    assert cloud_http.get("/rest/api/3/issueLinkType").json()["issueLinkTypes"]
    assert cloud_http.get("/rest/api/3/project/NOPE").status_code == 404


def test_create_metadata_old_and_paged(cloud_http: Any) -> None:
    """Both createmeta forms list SLM's types, and the sub-task type is flagged subtask."""
    old = cloud_http.get(
        "/rest/api/3/issue/createmeta",
        params={"projectKeys": "SLM", "expand": "projects.issuetypes.fields"},
    ).json()
    types = old["projects"][0]["issuetypes"]
    assert any(t["subtask"] for t in types)
    assert "summary" in types[0]["fields"]
    paged = cloud_http.get("/rest/api/3/issue/createmeta/SLM/issuetypes").json()
    task = next(t for t in paged["issueTypes"] if t["name"] == "Task")
    fields = cloud_http.get(f"/rest/api/3/issue/createmeta/SLM/issuetypes/{task['id']}").json()
    assert {f["fieldId"] for f in fields["fields"]} >= {"summary", "labels", "customfield_10034"}


def test_issue_round_trip_matches_the_spec(
    cloud_http: Any, new_task: Callable[..., dict[str, Any]], label: str
) -> None:
    """Create, get, edit, comment, watch, transition, link and unlink: every answer has the
    official shape."""
    created = new_task(labels=[label])
    key = created["key"]
    issue = cloud_http.get(f"/rest/api/3/issue/{key}").json()
    assert issue["fields"]["labels"] == [label]
    assert (
        cloud_http.put(
            f"/rest/api/3/issue/{key}", json={"update": {"labels": [{"add": "x"}]}}
        ).status_code
        == 204
    )
    assert (
        cloud_http.post(
            f"/rest/api/3/issue/{key}/comment", json={"body": issue["fields"]["description"]}
        ).status_code
        == 201
    )
    assert cloud_http.get(f"/rest/api/3/issue/{key}/comment").json()["total"] == 1
    assert cloud_http.get(f"/rest/api/3/issue/{key}/transitions").json()["transitions"]
    assert cloud_http.get(f"/rest/api/3/issue/{key}/watchers").json()["watchCount"] == 0
    link = {"object": {"url": "https://sn.example.com/incident/1", "title": "INC0001"}}
    assert cloud_http.post(f"/rest/api/3/issue/{key}/remotelink", json=link).status_code == 201
    assert len(cloud_http.get(f"/rest/api/3/issue/{key}/remotelink").json()) == 1
    other = new_task(labels=[label])["key"]
    linked = cloud_http.post(
        "/rest/api/3/issueLink",
        json={
            "type": {"name": "Relates"},
            "inwardIssue": {"key": key},
            "outwardIssue": {"key": other},
        },
    )
    assert linked.status_code == 201
    links = cloud_http.get(f"/rest/api/3/issue/{other}").json()["fields"]["issuelinks"]
    assert links
    gone = cloud_http.delete(f"/rest/api/3/issueLink/{links[0]['id']}")
    assert gone.status_code == 204 and not gone.content
    assert not cloud_http.get(f"/rest/api/3/issue/{key}").json()["fields"]["issuelinks"]
    again = cloud_http.delete(f"/rest/api/3/issueLink/{links[0]['id']}")
    assert again.status_code == 404 and again.json()["errorMessages"]


def test_errors_match_the_spec(cloud_http: Any) -> None:
    """400s of create carry Jira's ErrorCollection; bulk failures carry CreatedIssues."""
    bad = cloud_http.post("/rest/api/3/issue", json={"fields": {"project": {"key": "SLM"}}})
    assert bad.status_code == 400
    assert bad.json()["errors"]["summary"]
    bulk = cloud_http.post("/rest/api/3/issue/bulk", json={"issueUpdates": [{"fields": {}}]})
    assert bulk.status_code == 400
    assert bulk.json()["errors"][0]["failedElementNumber"] == 0


def test_jsm_sla_and_search_fields_match_the_specs(cloud_http: Any) -> None:
    """ITSD requests carry SLA fields in search; the JSM SLA resource matches the JSM spec."""
    page = cloud_http.get(
        "/rest/api/3/search/jql",
        params={
            "jql": "project = ITSD ORDER BY key",
            "fields": "summary,customfield_10030,customfield_10033",
            "maxResults": 20,
        },
    ).json()
    with_sla = [i for i in page["issues"] if i["fields"]["customfield_10030"]]
    assert with_sla
    sla = with_sla[0]["fields"]["customfield_10030"]
    assert sla["name"] == "Time to resolution"
    assert "completedCycles" in sla
    body = cloud_http.get(f"/rest/servicedeskapi/request/{with_sla[0]['key']}/sla").json()
    assert {v["name"] for v in body["values"]} >= {"Time to resolution"}
