"""People act as themselves in the Jira stand-in, and what they do shows as real Jira shows it:
comment authors, resolution dates, the capped comment page and the paged comment resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from openapi_core import OpenAPI

from sandbox.estate.model import Estate
from sandbox.jira import PERSON_PASSWORD

from .conftest import BaseUrlSession, JiraSite, ValidatingSession, adf

DONE, TO_DO = "31", "11"


def _person(estate: Estate, **wanted: Any) -> Any:
    return next(
        p for p in estate.people if p.in_jira and all(getattr(p, k) == v for k, v in wanted.items())
    )


def test_a_person_s_comment_is_theirs_and_myself_is_their_profile(
    cloud_http: ValidatingSession, new_task: Callable[..., dict[str, Any]], estate: Estate
) -> None:
    """Basic auth with a person's e-mail and the sandbox password acts as that person: the
    comment's author is their accountId, /myself is their profile. Other credentials remain
    the integration account."""
    person = _person(estate, active=True, jira_email_hidden=False)
    issue = new_task("Acting")
    as_person = (person.email, PERSON_PASSWORD)
    body = {"body": adf("Decision: keep the target")}
    made = cloud_http.post(f"/rest/api/3/issue/{issue['key']}/comment", json=body, auth=as_person)
    assert made.status_code == 201
    assert made.json()["author"]["accountId"] == person.jira_account_id
    me = cloud_http.get("/rest/api/3/myself", auth=as_person).json()
    assert (me["accountId"], me["emailAddress"]) == (person.jira_account_id, person.email)
    assert cloud_http.get("/rest/api/3/myself").json()["emailAddress"] == "slm-sync@example.com"


def test_a_person_with_a_wrong_password_or_deactivated_is_refused(
    cloud: JiraSite, estate: Estate
) -> None:
    """A person's login with another password, or a deactivated person's, answers 401."""
    active = _person(estate, active=True)
    url = f"{cloud.url}/rest/api/3/myself"
    assert requests.get(url, auth=(active.email, "guess"), timeout=5).status_code == 401
    gone = next((p for p in estate.people if p.in_jira and not p.active), None)
    if gone is not None:
        response = requests.get(url, auth=(gone.email, PERSON_PASSWORD), timeout=5)
        assert response.status_code == 401


def test_a_data_center_person_logs_in_by_user_name_and_writes_wiki(
    dc_http: BaseUrlSession, estate: Estate
) -> None:
    """On Data Center a person may log in with their user name; their comment is wiki text and
    its author their user name."""
    person = _person(estate, active=True)
    fields = {"project": {"key": "SLM"}, "issuetype": {"name": "Task"}, "summary": "DC acting"}
    key = dc_http.post("/rest/api/2/issue", json={"fields": fields}).json()["key"]
    auth = (person.jira_name, PERSON_PASSWORD)
    made = dc_http.post(f"/rest/api/2/issue/{key}/comment", json={"body": "h1. Hi"}, auth=auth)
    assert made.status_code == 201
    assert (made.json()["author"]["name"], made.json()["body"]) == (person.jira_name, "h1. Hi")


def test_resolution_date_is_set_entering_done_and_cleared_leaving_it(
    cloud_http: ValidatingSession, new_task: Callable[..., dict[str, Any]]
) -> None:
    """resolutiondate is null while open, a Jira timestamp once Done, null again on reopen."""
    key = new_task("Resolve me")["key"]

    def resolved() -> Any:
        fields = {"fields": "resolutiondate,resolution"}
        return cloud_http.get(f"/rest/api/3/issue/{key}", params=fields).json()["fields"]

    assert resolved()["resolutiondate"] is None
    transition = f"/rest/api/3/issue/{key}/transitions"
    assert cloud_http.post(transition, json={"transition": {"id": DONE}}).status_code == 204
    done = resolved()
    assert done["resolutiondate"].endswith("+0000") and done["resolution"]["name"] == "Done"
    assert cloud_http.post(transition, json={"transition": {"id": TO_DO}}).status_code == 204
    assert resolved() == {"resolutiondate": None, "resolution": None}


def test_comment_field_embeds_a_capped_page_and_the_resource_pages_the_rest(
    jira_factory: Callable[..., JiraSite], jira_spec: OpenAPI, jsm_spec: OpenAPI
) -> None:
    """With the caps at 2 (embedded) and 3 (per page), an issue with 7 comments embeds the
    oldest 2 with total 7 in search and GET issue; GET issue/{key}/comment pages by startAt,
    never more than 3 however many are asked for, newest first with orderBy=-created."""
    site = jira_factory("cloud", index_lag_ms=0)
    site.app.realism.update({"embedded_comments": 2, "comment_page_max": 3})
    http = ValidatingSession(site.url, jira_spec, jsm_spec)
    fields = {"project": {"key": "SLM"}, "issuetype": {"name": "Task"}, "summary": "Talk"}
    key = http.post("/rest/api/3/issue", json={"fields": fields}).json()["key"]
    for number in range(7):
        http.post(f"/rest/api/3/issue/{key}/comment", json={"body": adf(f"c{number}")})

    found = http.post("/rest/api/3/search/jql", json={"jql": f"key = {key}", "fields": ["comment"]})
    embedded = found.json()["issues"][0]["fields"]["comment"]
    assert (embedded["total"], embedded["startAt"], len(embedded["comments"])) == (7, 0, 2)
    got = http.get(f"/rest/api/3/issue/{key}", params={"fields": "comment"}).json()
    assert got["fields"]["comment"]["total"] == 7
    page = http.get(f"/rest/api/3/issue/{key}/comment", params={"startAt": 2, "maxResults": 50})
    texts = [c["body"]["content"][0]["content"][0]["text"] for c in page.json()["comments"]]
    assert (texts, page.json()["maxResults"], page.json()["total"]) == (["c2", "c3", "c4"], 3, 7)
    newest = http.get(f"/rest/api/3/issue/{key}/comment", params={"orderBy": "-created"}).json()
    assert newest["comments"][0]["body"]["content"][0]["content"][0]["text"] == "c6"
