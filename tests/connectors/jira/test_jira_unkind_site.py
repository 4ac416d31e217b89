"""The connector against a Jira as unkind as the real one: bulk refusals that carry only
`errorMessages`, assignees Jira will not assign, bodies over 32,767 characters, per-issue write
limits, and search lagging behind new issues and every field."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from config import Settings
from connectors import Pacer
from connectors.jira import JiraClient, JiraTarget, Permission
from connectors.jira.tickets import TEXT_LIMIT
from review import Person, TicketSpec
from review.document import Document, paragraph
from sandbox import Sandbox

HOST = "https://your-domain.atlassian.net"
API = f"{HOST}/rest/api/3"


def _spec(key: str, assignee: Person | None = None, paragraphs: int = 1) -> TicketSpec:
    blocks = tuple(paragraph(f"Section {n}: " + "lorem ipsum " * 40) for n in range(paragraphs))
    return TicketSpec(
        key=key, kind="review", title=f"Review {key}", body=Document(blocks=blocks),
        assignee=assignee,
    )  # fmt: skip


def _newcomer(site: Sandbox) -> Person:
    person = site.estate.person(site.estate.deliberate["person_not_assignable"])
    return Person(email=person.email, name=person.name)


# ---- bulk refusals with only errorMessages (item 6) ------------------------------------------
def test_bulk_refusal_with_only_error_messages_keeps_its_reason(
    mocked: Any, example: Callable[..., Any], unit_settings: Callable[..., Settings]
) -> None:
    """An element refused with `errorMessages` and no field errors: the reason reaches the
    create result (the summary) and a `jira.create_refused` log event."""
    types = example("GET", "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes", "200")
    first = types["issueTypes"][0]
    task = {**first, "id": "10001", "name": "Task", "subtask": False}
    subtask = {**first, "id": "10002", "name": "Sub-task", "subtask": True}
    types = {**types, "issueTypes": [task, subtask]}
    mocked.get(f"{API}/issue/createmeta/SLM/issuetypes", json=types)
    reason = "The issue could not be created: the project is archived."
    answer = {
        "issues": [{"id": "10000", "key": "SLM-1", "self": f"{API}/issue/10000"}],
        "errors": [
            {
                "status": 400,
                "failedElementNumber": 1,
                "elementErrors": {"errorMessages": [reason], "errors": {}},
            }
        ],
    }
    mocked.post(f"{API}/issue/bulk", json=answer, status=201)
    settings = unit_settings()
    target = JiraTarget(JiraClient.connect(settings.jira, settings.http), settings)
    with capture_logs() as logs:
        ok, refused = target.create([_spec("k:a"), _spec("k:b")], {})
    assert ok.ref is not None and ok.ref.key == "SLM-1"
    assert refused.ref is None and not refused.in_doubt and reason in (refused.error or "")
    events = [e for e in logs if e["event"] == "jira.create_refused"]
    assert [e["key"] for e in events] == ["k:b"] and reason in events[0]["error"]
    sent = json.loads(mocked.calls[-1].request.body)
    assert [u["fields"]["labels"][0] for u in sent["issueUpdates"]] == ["k:a", "k:b"]


# ---- assignees Jira refuses ------------------------------------------------------------------
def test_assignee_jira_refuses_gets_the_fallback_and_becomes_a_gap(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    people_of: Callable[[Sandbox], list[Person]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
) -> None:
    """A responsible person Jira finds but will not assign ("cannot be assigned issues"): the
    ticket is created for the fallback assignee (not failed), names them in the body, and they
    are reported as unresolved; later tickets go to the fallback without a refusal."""
    fallback = people_of(fresh_site)[0]
    newcomer = _newcomer(fresh_site)
    target = JiraTarget.from_settings(jira_settings(fresh_site, fallback_assignee=fallback.email))
    with capture_logs() as logs:
        [result] = target.create([_spec("slm:2026:a:review", newcomer)], {})
        [later] = target.create([_spec("slm:2026:b:review", newcomer)], {})
    assert result.ref is not None and later.ref is not None
    tickets = created(fresh_site)
    assert [t["assignee"]["email"] for t in tickets] == [fallback.email, fallback.email]
    assert "cannot be assigned" in json.dumps(tickets[0]["description"])
    assert target.unresolved([newcomer, fallback]) == (newcomer,)
    refusals = [e for e in logs if e["event"] == "jira.person_not_assignable"]
    assert len(refusals) == 1


def test_an_element_refused_for_its_assignee_rides_with_the_next_bulk_call(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    people_of: Callable[[Sandbox], list[Person]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """120 tickets, one of the first 50 for a person Jira will not assign: it goes again to
    the fallback at the head of the next bulk call, not in a call of its own (3 calls, the
    bound for 120), and every ticket exists exactly once."""
    fallback, owner = people_of(fresh_site)[:2]
    newcomer = _newcomer(fresh_site)
    target = JiraTarget.from_settings(jira_settings(fresh_site, fallback_assignee=fallback.email))
    specs = [_spec(f"slm:2026:s{n:03d}:review", newcomer if n == 7 else owner) for n in range(120)]
    results = target.create(specs, {})
    assert all(r.ref is not None for r in results)
    bulk = sum(n for route, n in calls(fresh_site).items() if route.endswith("/issue/bulk"))
    assert bulk == 3
    tickets = created(fresh_site)
    labels = [label for t in tickets for label in t["labels"] if label.startswith("slm:")]
    assert sorted(labels) == sorted(s.key for s in specs), "each ticket once"
    refused = next(t for t in tickets if "slm:2026:s007:review" in t["labels"])
    assert refused["assignee"]["email"] == fallback.email


def test_update_to_an_assignee_jira_refuses_uses_the_fallback(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    people_of: Callable[[Sandbox], list[Person]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
) -> None:
    """Re-assigning an existing ticket to someone Jira refuses leaves it with the fallback
    assignee instead of failing the update."""
    owner, fallback = people_of(fresh_site)[1], people_of(fresh_site)[0]
    settings = jira_settings(fresh_site, fallback_assignee=fallback.email)
    target = JiraTarget.from_settings(settings)
    [result] = target.create([_spec("slm:2026:c:review", owner)], {})
    assert result.ref is not None
    fresh = JiraTarget.from_settings(settings)
    fresh.update(result.ref, _spec("slm:2026:c:review", _newcomer(fresh_site)))
    [ticket] = created(fresh_site)
    assert ticket["assignee"]["email"] == fallback.email


# ---- text over the limit ---------------------------------------------------------------------
def test_a_body_over_the_text_limit_is_cut_with_a_note(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    created: Callable[[Sandbox], list[dict[str, Any]]],
) -> None:
    """A review pack far over 32,767 characters is created (not refused), keeps its leading
    sections, and ends with a note that it was cut; a comment is cut alike."""
    target = JiraTarget.from_settings(jira_settings(fresh_site))
    spec = _spec("slm:2026:long:review", paragraphs=120)
    [result] = target.create([spec], {})
    assert result.ref is not None and result.error is None
    target.comment(result.ref, spec.body)
    [ticket] = created(fresh_site)
    description = json.dumps(ticket["description"])
    assert "Section 0:" in description and "Section 119:" not in description
    assert "the rest of this text was cut" in description
    assert "the rest of this text was cut" in json.dumps(ticket["comments"][0])
    rendered = ticket["description"]
    size = (
        len(rendered)
        if isinstance(rendered, str)
        else len(json.dumps(rendered, separators=(",", ":"), ensure_ascii=False))
    )
    assert size <= TEXT_LIMIT


# ---- per-issue write limit -------------------------------------------------------------------
def test_a_per_issue_429_is_retried_without_pausing_other_calls(
    mocked: Any, unit_settings: Callable[..., Settings]
) -> None:
    """A comment answered 429 `jira-per-issue-on-write` is sent again under the retry policy
    (it was certainly not applied) and succeeds; the pacer is not paused as for a quota."""
    headers = {"Retry-After": "1", "RateLimit-Reason": "jira-per-issue-on-write"}
    mocked.post(f"{API}/issue/SLM-1/comment", json={"errorMessages": ["Too many writes"]},
                status=429, headers=headers)  # fmt: skip
    mocked.post(f"{API}/issue/SLM-1/comment", json={"id": "10000"}, status=201)
    settings = unit_settings()
    pacer = Pacer(rate=1000.0, burst=5)
    client = JiraClient.connect(settings.jira, settings.http, pacer=pacer)
    body = {"body": {"type": "doc", "version": 1, "content": []}}
    with capture_logs() as logs:
        answer = client.call(
            "POST",
            "issue/SLM-1/comment",
            what="comment on SLM-1",
            permission=Permission.COMMENT,
            body=body,
            idempotent=False,
        )
    assert answer == {"id": "10000"} and len(mocked.calls) == 2
    assert [e["event"] for e in logs if e["event"] == "http.paused"] == []
    assert [e["event"] for e in logs].count("http.retry") == 1


# ---- search lag on every field ---------------------------------------------------------------
@pytest.fixture
def stepped(sandbox_lagging: Sandbox) -> Iterator[tuple[Sandbox, list[float]]]:
    now = [1000.0]
    sandbox_lagging.jira.site.clock = lambda: now[0]
    yield sandbox_lagging, now


def test_state_of_new_tickets_reads_through_the_lag(
    stepped: tuple[Sandbox, list[float]],
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """Right after create, when search does not see the new issues at all, `state` still
    reports every ticket (Cloud: reconcileIssues; Data Center: read by key)."""
    site, _ = stepped
    target = JiraTarget.from_settings(jira_settings(site))
    results = target.create(review_plan(site, 2), {})
    refs = [r.ref for r in results if r.ref is not None]
    assert len(refs) == len(results)
    states = target.state(refs)
    assert set(states) == {ref.key for ref in refs}
    assert not any(state.done for state in states.values())


def test_find_survives_lag_on_every_field(
    stepped: tuple[Sandbox, list[float]],
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """A new process looking up keys created moments ago (search sees neither the issues nor
    their labels yet) waits the index lag and finds each once, creating nothing twice."""
    site, now = stepped
    specs = review_plan(site, 2)
    first = JiraTarget.from_settings(jira_settings(site))
    first.create(specs, {})

    def wait(seconds: float) -> None:
        now[0] += seconds

    second = JiraTarget(first.api, jira_settings(site, index_lag_seconds=5.0), sleep=wait)
    assert second._lookup([s.key for s in specs]) == {}  # the index has not caught up
    found = second.find([s.key for s in specs], recent=True)
    assert set(found) == {s.key for s in specs}
