"""Faults stay local, against the sandbox over HTTP: one person's failed lookup, cut search
bodies and 429 storms on key lookups, and creates whose answer is lost (never sent twice)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from config import Settings
from connectors import OutcomeUnknown, Pacer, RateLimited, TransientError
from connectors.jira import JiraClient, JiraTarget
from review import Person, TicketSpec
from sandbox import Sandbox

ATTEMPTS = 6  # http.max_attempts default
SetFaults = Callable[[str], None]


@pytest.fixture
def faults(fresh_site: Sandbox) -> Iterator[SetFaults]:
    """Set the sandbox's fault spec for this test; faults are off again afterwards."""
    url = f"{fresh_site.jira_url}/__sandbox/knobs"

    def set_faults(spec: str) -> None:
        requests.post(url, json={"faults": spec}, timeout=5).raise_for_status()

    yield set_faults
    requests.post(url, json={"faults": None}, timeout=5)


def _api(site: Sandbox) -> str:
    return "/rest/api/3" if site.jira_flavor == "cloud" else "/rest/api/2"


def _search_route(site: Sandbox) -> str:
    return (
        f"POST {_api(site)}/search/jql"
        if site.jira_flavor == "cloud"
        else f"POST {_api(site)}/search"
    )


def _target(settings: Settings) -> JiraTarget:
    """A target whose pacing sleeps on a fake clock: a quota 429 pauses without wall time."""
    now = [1000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = Pacer(rate=1000.0, burst=5, clock=lambda: now[0], sleep=sleep)
    return JiraTarget(JiraClient.connect(settings.jira, settings.http, pacer=pacer), settings)


def test_a_cut_user_search_costs_one_person_one_cycle(
    fresh_site: Sandbox,
    faults: SetFaults,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
    people_of: Callable[[Sandbox], list[Person]],
) -> None:
    """Every answer to one person's user search is cut short: after the retries that person
    has no identity this cycle, their tickets go to the fallback assignee, every other
    ticket keeps its assignee, nothing is cached, and the next cycle finds them."""
    people = people_of(fresh_site)
    specs = review_plan(fresh_site, 4)
    ghost, fallback = people[1], people[-1]
    email = (ghost.email or "").lower()
    param = "query" if fresh_site.jira_flavor == "cloud" else "username"
    faults(f"malformed=1,only=GET {_api(fresh_site)}/user/search?{param}={email}")
    target = _target(jira_settings(fresh_site, fallback_assignee=fallback.email))
    with capture_logs() as logs:
        results = target.create(specs, {})
    assert all(r.ref is not None for r in results)
    assignees = {_key(t): t["assignee"]["email"] for t in created(fresh_site)}
    expected = {
        s.key: (fallback.email if s.assignee == ghost else (s.assignee and s.assignee.email))
        for s in specs
    }
    assert assignees == expected
    assert fallback.email in assignees.values() and len(set(assignees.values())) > 2
    failed = [e["email"] for e in logs if e["event"] == "jira.person_lookup_failed"]
    retried = [e for e in logs if e["event"] == "http.retry" and email in e["what"]]
    assert failed == [email] and len(retried) == ATTEMPTS - 1
    assert target.people.lookup_failed == (email,)
    assert email not in target.people.cache and email not in target.unresolved_people
    faults("")
    target.people.preload({})  # what the sync layer does when the next cycle starts
    assert target.people.by_email(email) is not None


def _key(ticket: dict[str, Any]) -> str:
    return next(label for label in ticket["labels"] if label.startswith("slm:"))


def _create(settings: Settings, plan: list[TicketSpec]) -> list[str]:
    JiraTarget.from_settings(settings).create(plan, {})
    return [spec.key for spec in plan]


def test_a_cut_search_body_is_retried_and_the_lookup_succeeds(
    fresh_site: Sandbox,
    faults: SetFaults,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """Search answers cut short (seeded, 60 %) are read again; every key is found."""
    settings = jira_settings(fresh_site)
    keys = _create(settings, review_plan(fresh_site, 2)[:3])
    requests.post(f"{fresh_site.jira_url}/__sandbox/reset", timeout=5)
    faults(f"malformed=0.6,seed=1,only={_search_route(fresh_site)}")
    with capture_logs() as logs:
        found = _target(settings).find(keys)
    assert set(found) == set(keys)
    retries = [e for e in logs if e["event"] == "http.retry" and e["what"] == "key lookup"]
    assert retries and calls(fresh_site)[_search_route(fresh_site)] == 1 + len(retries)


def test_a_429_storm_on_key_lookups_is_waited_out_within_the_budget(
    fresh_site: Sandbox,
    faults: SetFaults,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """70 % of key-lookup searches answer 429 (a quota, Retry-After 1 s): each search waits
    and retries within the attempt budget, and all keys are found in three searches of 50."""
    settings = jira_settings(fresh_site)
    keys = _create(settings, review_plan(fresh_site, 2)[:3])
    keys += [f"slm:2026:absent{index:03d}:review" for index in range(117)]
    requests.post(f"{fresh_site.jira_url}/__sandbox/reset", timeout=5)
    faults(f"429=0.7,seed=7,only={_search_route(fresh_site)}")
    with capture_logs() as logs:
        found = _target(settings).find(keys)
    assert set(found) == set(keys[:3])
    limited = [e for e in logs if e["event"] == "http.retry" and e["status"] == 429]
    assert len(limited) >= 3 and all(e["wait"] >= 1 for e in limited)
    assert calls(fresh_site)[_search_route(fresh_site)] == 3 + len(limited)


def test_a_lookup_rate_limited_past_the_budget_fails_as_transient(
    fresh_site: Sandbox,
    faults: SetFaults,
    jira_settings: Callable[..., Settings],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """When every attempt answers 429, the lookup raises RateLimited (a TransientError, the
    caller retries that ticket next cycle) after exactly the configured attempts."""
    faults(f"429=1,only={_search_route(fresh_site)}")
    with pytest.raises(RateLimited) as caught:
        _target(jira_settings(fresh_site)).find(["slm:2026:svc0000:review"])
    assert isinstance(caught.value, TransientError)
    assert calls(fresh_site)[_search_route(fresh_site)] == ATTEMPTS


@pytest.mark.parametrize(
    ("fault", "applied"),
    [("malformed=1", 1), ("5xx=1", 0), ("reset=1", 0)],
    ids=["cut-body", "proxy-5xx", "reset"],
)
def test_a_create_whose_answer_is_lost_is_in_doubt_and_sent_once(
    fresh_site: Sandbox,
    faults: SetFaults,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    calls: Callable[[Sandbox], dict[str, int]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
    fault: str,
    applied: int,
) -> None:
    """A cut 201 (the issue exists), a proxy 5xx or a reset (it may): OutcomeUnknown, and the
    sandbox saw exactly one create request."""
    target = _target(jira_settings(fresh_site))
    [cycle] = review_plan(fresh_site, 0)
    update = target.fields.create(cycle, None)
    faults(f"{fault},only=POST {_api(fresh_site)}/issue/bulk")
    with pytest.raises(OutcomeUnknown) as caught:
        target.api.bulk_create([update])
    assert caught.value.sent and caught.value.what == "bulk create"
    assert calls(fresh_site)[f"POST {_api(fresh_site)}/issue/bulk"] == 1
    assert len(created(fresh_site)) == applied


def test_a_create_refused_with_429_is_retried_and_is_not_in_doubt(
    fresh_site: Sandbox,
    faults: SetFaults,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    calls: Callable[[Sandbox], dict[str, int]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
) -> None:
    """A 429 on every attempt: the create is retried (the tool did nothing) and, when the
    budget is spent, fails as RateLimited with `sent=False`; nothing was created."""
    target = _target(jira_settings(fresh_site))
    [cycle] = review_plan(fresh_site, 0)
    update = target.fields.create(cycle, None)
    faults(f"429=1,only=POST {_api(fresh_site)}/issue/bulk")
    with pytest.raises(RateLimited) as caught:
        target.api.bulk_create([update])
    assert not isinstance(caught.value, OutcomeUnknown) and not caught.value.sent
    assert calls(fresh_site)[f"POST {_api(fresh_site)}/issue/bulk"] == ATTEMPTS
    assert created(fresh_site) == []


def test_a_create_to_a_closed_port_was_never_sent(
    fresh_site: Sandbox, jira_settings: Callable[..., Settings]
) -> None:
    """Connection refused: retried under the policy (safe: nothing left), then a
    TransientError with `sent=False`, not OutcomeUnknown."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = jira_settings(
        fresh_site, url=f"http://127.0.0.1:{port}", deployment=fresh_site.jira_flavor
    )
    client = JiraClient.connect(settings.jira, settings.http)
    fields = {"project": {"key": "SLM"}, "issuetype": {"id": "10001"}}
    with capture_logs() as logs, pytest.raises(TransientError) as caught:
        client.bulk_create([{"fields": {**fields, "summary": "never sent"}}])
    assert not isinstance(caught.value, OutcomeUnknown) and not caught.value.sent
    assert len([e for e in logs if e["event"] == "http.retry"]) == ATTEMPTS - 1
