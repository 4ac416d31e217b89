"""Faults stay local (`responses`, requests validated against the Cloud spec): a malformed or
failing user search costs one person for one cycle, searches are retried through 429s and cut
bodies, and a write whose answer is lost is never sent twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from responses import matchers
from structlog.testing import capture_logs

from config import Settings
from connectors import AuthError, OutcomeUnknown, RateLimited, TransientError
from connectors.jira import JiraClient, JiraTarget, PeopleDirectory
from connectors.jira.client import Permission
from review import Person

HOST = "https://your-domain.atlassian.net"
API = f"{HOST}/rest/api/3"
ANN = Person(email="ann@example.com", name="Ann")
BOB = Person(email="bob@example.com", name="Bob")
ATTEMPTS = 6  # http.max_attempts default
ISSUE = {"project": {"key": "SLM"}, "issuetype": {"id": "10001"}, "summary": "Review"}


def _client(settings: Settings) -> JiraClient:
    return JiraClient.connect(settings.jira, settings.http)


def _user(person: Person) -> list[dict[str, Any]]:
    account = f"acc-{person.name.lower()}"
    return [{"accountId": account, "emailAddress": person.email, "displayName": person.name}]


def _search_for(mocked: Any, person: Person, **answer: Any) -> None:
    match = [matchers.query_param_matcher({"query": person.email, "maxResults": "10"})]
    mocked.get(f"{API}/user/search", match=match, **answer)


def _cut(body: Any) -> str:
    text = json.dumps(body)
    return text[: len(text) // 2]


def _user_searches(mocked: Any, person: Person) -> int:
    wanted = f"query={person.email.split('@')[0]}%40"
    return sum(
        1 for c in mocked.calls if "user/search" in c.request.url and wanted in c.request.url
    )


def test_a_cut_user_search_body_is_retried_and_resolves(
    mocked: Any, unit_settings: Callable[..., Settings]
) -> None:
    """A 200 whose body is cut short is read again under the retry policy (logged)."""
    _search_for(mocked, ANN, body=_cut(_user(ANN)), content_type="application/json")
    _search_for(mocked, ANN, json=_user(ANN))
    people = PeopleDirectory(_client(unit_settings()))
    with capture_logs() as logs:
        assert people.by_email(ANN.email) == "acc-ann"
    retries = [e for e in logs if e["event"] == "http.retry"]
    assert [(e["what"], e["error"]) for e in retries] == [
        (f"user search for {ANN.email}", "TransientError")
    ]


@pytest.mark.parametrize(
    "failure",
    [
        {"body": _cut(_user(ANN)), "content_type": "application/json"},
        {"status": 503, "body": "<html>Service Unavailable</html>"},
        {"status": 429, "json": {"errorMessages": ["Rate limit exceeded."]}},
    ],
    ids=["malformed", "503", "429"],
)
def test_a_failing_lookup_fails_that_person_for_this_cycle_only(
    mocked: Any, unit_settings: Callable[..., Settings], failure: dict[str, Any]
) -> None:
    """After the retries, Ann has no identity this cycle: not cached as unresolved, logged
    once, not searched again for her other tickets; Bob is unaffected; the next cycle
    (`preload`, as the sync layer opens it) looks her up again."""
    _search_for(mocked, ANN, **failure)
    _search_for(mocked, BOB, json=_user(BOB))
    people = PeopleDirectory(_client(unit_settings()))
    with capture_logs() as logs:
        assert [people.identity(ANN), people.identity(BOB), people.identity(ANN)] == [
            None,
            "acc-bob",
            None,
        ]
    assert _user_searches(mocked, ANN) == ATTEMPTS
    assert ANN.email not in people.cache and people.unresolved == ()
    assert people.lookup_failed == (ANN.email,)
    assert people.any_failed([BOB, None, ANN]) and not people.any_failed([BOB])
    failed = [e for e in logs if e["event"] == "jira.person_lookup_failed"]
    assert [(e["email"], e["log_level"]) for e in failed] == [(ANN.email, "warning")]
    mocked.replace("GET", f"{API}/user/search", json=_user(ANN))
    people.preload({BOB.email: "acc-bob"})
    assert people.identity(ANN) == "acc-ann" and people.cache[ANN.email] == "acc-ann"


def test_a_missing_user_browse_permission_still_stops_the_run(
    mocked: Any, unit_settings: Callable[..., Settings]
) -> None:
    """A 403 on user search is no one person's problem: it names the permission and stops."""
    _search_for(mocked, ANN, status=403, json={"errorMessages": ["Forbidden"]})
    with pytest.raises(AuthError, match="Browse users"):
        PeopleDirectory(_client(unit_settings())).identity(ANN)


def test_key_lookups_wait_out_429s_on_every_page(
    mocked: Any, unit_settings: Callable[..., Settings]
) -> None:
    """A 429 (Retry-After 3) on the first and on the second page of POST search/jql is
    waited out and retried with the same page token; every key is found."""
    limited = {"status": 429, "json": {"errorMessages": ["Rate limit exceeded."]}}
    limited["headers"] = {"Retry-After": "3"}
    first = {"issues": [{"id": "10", "key": "SLM-1", "fields": {"labels": ["k1"]}}]}
    second = {"issues": [{"id": "11", "key": "SLM-2", "fields": {"labels": ["k2"]}}]}
    for answer in (limited, {"json": {**first, "nextPageToken": "t1"}}, limited):
        mocked.post(f"{API}/search/jql", **answer)
    mocked.post(f"{API}/search/jql", json={**second, "isLast": True})
    settings = unit_settings()
    with capture_logs() as logs:
        found = JiraTarget(_client(settings), settings).find(["k1", "k2"])
    assert {k: r.key for k, r in found.items()} == {"k1": "SLM-1", "k2": "SLM-2"}
    waits = [(e["status"], e["wait"]) for e in logs if e["event"] == "http.retry"]
    assert len(waits) == 2 and all(status == 429 and wait >= 3 for status, wait in waits)
    tokens = [json.loads(c.request.body).get("nextPageToken") for c in mocked.calls]
    assert tokens == [None, None, "t1", "t1"]


def test_a_cut_search_body_is_retried(mocked: Any, unit_settings: Callable[..., Settings]) -> None:
    """A truncated search answer is read again instead of failing the lookup."""
    page = {"issues": [{"id": "10", "key": "SLM-1", "fields": {"labels": ["k1"]}}]}
    mocked.post(f"{API}/search/jql", body=_cut(page), content_type="application/json")
    mocked.post(f"{API}/search/jql", json={**page, "isLast": True})
    settings = unit_settings()
    assert set(JiraTarget(_client(settings), settings).find(["k1"])) == {"k1"}
    assert len(mocked.calls) == 2


def test_a_lookup_that_stays_rate_limited_fails_as_transient(
    mocked: Any, unit_settings: Callable[..., Settings]
) -> None:
    """When the budget is spent, the lookup raises RateLimited (a TransientError the caller
    can treat per ticket) after exactly the configured attempts."""
    mocked.post(f"{API}/search/jql", status=429, json={"errorMessages": ["Rate limit exceeded."]})
    settings = unit_settings()
    with pytest.raises(RateLimited) as caught:
        JiraTarget(_client(settings), settings).find(["k1"])
    assert isinstance(caught.value, TransientError) and not caught.value.sent
    assert len(mocked.calls) == ATTEMPTS


def test_a_cut_answer_to_a_comment_is_in_doubt_and_not_sent_again(
    mocked: Any, example: Callable[..., Any], unit_settings: Callable[..., Settings]
) -> None:
    """The comment was added (201) but its answer is cut: OutcomeUnknown, one request."""
    answer = example("POST", "/rest/api/3/issue/{issueIdOrKey}/comment", "201")
    url = f"{API}/issue/SLM-1/comment"
    mocked.post(url, status=201, body=_cut(answer), content_type="application/json")
    client = _client(unit_settings())
    body = {"body": {"type": "doc", "version": 1, "content": []}}
    with pytest.raises(OutcomeUnknown) as caught:
        client.call(
            "POST", "issue/SLM-1/comment", what="comment on SLM-1",
            permission=Permission.COMMENT, body=body, idempotent=False,
        )  # fmt: skip
    assert "answered 201" in str(caught.value) and caught.value.what == "comment on SLM-1"
    assert len(mocked.calls) == 1


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 201, "body": '{"issues":[{"id":"10000","key":"ED-2'},
        {"status": 500, "json": {"errorMessages": ["Internal server error"]}},
        {"status": 502, "body": "<html>Bad Gateway</html>"},
        {"body": requests.ReadTimeout("read timed out")},
        {"body": requests.ConnectionError("Connection aborted.")},
    ],
    ids=["cut-201", "500", "502", "read-timeout", "reset"],
)
def test_a_create_in_doubt_raises_outcome_unknown_once(
    mocked: Any, unit_settings: Callable[..., Settings], failure: dict[str, Any]
) -> None:
    """Whenever the create may have been applied, it is sent once and raises OutcomeUnknown."""
    mocked.post(f"{API}/issue/bulk", **failure)
    with pytest.raises(OutcomeUnknown) as caught:
        _client(unit_settings()).bulk_create([{"fields": ISSUE}])
    assert caught.value.sent and "bulk create" in str(caught.value)
    assert len(mocked.calls) == 1


@pytest.mark.parametrize(
    "refusal",
    [
        {"body": requests.ConnectTimeout("connect timed out")},
        {"status": 429, "json": {"errorMessages": ["Rate limit exceeded."]}},
    ],
    ids=["connect-timeout", "429"],
)
def test_a_create_the_tool_never_acted_on_is_sent_again(
    mocked: Any,
    example: Callable[..., Any],
    unit_settings: Callable[..., Settings],
    refusal: dict[str, Any],
) -> None:
    """A connect timeout or a 429 left nothing behind: the create is retried and succeeds."""
    mocked.post(f"{API}/issue/bulk", **refusal)
    mocked.post(
        f"{API}/issue/bulk", status=201, json=example("POST", "/rest/api/3/issue/bulk", "201")
    )
    outcomes = _client(unit_settings()).bulk_create([{"fields": ISSUE}, {"fields": ISSUE}])
    assert [o.key for o in outcomes] == ["ED-24", "ED-25"]
    assert len(mocked.calls) == 2
