"""People in Jira looked up in batches, counted per route (never time), on the Cloud stand-in.

A cold start for many people lists the directory (`users/search`, 1,000 a page) instead of one
search per person: the searches left are for people the listing cannot show (hidden e-mail, no
account). Known accounts past `jira.people_cache_seconds` are checked in `user/bulk` batches of
100, and an account that is no longer active is forgotten. The stand-in's `user/bulk` pages as
Cloud does (`startAt`, `maxResults` capped, `isLast`), leaves unknown ids out and answers 404 on
Data Center.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from math import ceil
from typing import Any

import pytest
import requests

from config import Settings
from connectors.jira import JiraTarget
from connectors.jira.people import BULK_IDS, LIST_PAGE
from review import Person
from sandbox import Sandbox
from tests.connectors.jira.conftest import _start


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def cloud() -> Iterator[Sandbox]:
    running = _start("cloud", index_lag_ms=0, services=40)
    yield running
    running.stop()


def _reset(site: Sandbox) -> None:
    requests.post(f"{site.jira_url}/__sandbox/reset?state=true", timeout=5)


def _user_calls(calls: dict[str, int]) -> dict[str, int]:
    return {route: n for route, n in calls.items() if "/user" in route}


def _everyone(site: Sandbox) -> list[Person]:
    return [Person(email=p.email, name=p.name) for p in site.estate.people if p.email]


def _target(site: Sandbox, jira_settings: Callable[..., Settings], clock: Clock) -> JiraTarget:
    target = JiraTarget.from_settings(jira_settings(site, people_cache_seconds=3600))
    target.people.clock = clock
    return target


def test_a_cold_start_lists_the_directory_instead_of_searching_each_person(
    cloud: Sandbox,
    jira_settings: Callable[..., Settings],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """Every person of the estate looked up at once costs ceil(directory / 1000) listing calls
    plus one search per person the listing cannot show, far fewer than one per person; the
    result is the same as searching each (visible people found, the others reported)."""
    _reset(cloud)
    people = _everyone(cloud)
    target = _target(cloud, jira_settings, Clock())
    unresolved = {p.email for p in target.unresolved(people)}
    used = _user_calls(calls(cloud))
    estate = {p.email: p for p in cloud.estate.people}
    invisible = {
        p.email for p in people if not estate[p.email].in_jira or estate[p.email].jira_email_hidden
    }
    directory = sum(1 for p in cloud.estate.people if p.in_jira) + 1  # the integration account
    assert used.get("GET /rest/api/3/users/search", 0) <= ceil(directory / LIST_PAGE) + 1
    assert used.get("GET /rest/api/3/user/search", 0) <= len(invisible)
    assert sum(used.values()) < len(people) / 2
    found = {
        p.email
        for p in people
        if p.email not in invisible and estate[p.email].active and estate[p.email].jira_assignable
    }
    assert found and not unresolved & found


def test_known_accounts_past_their_expiry_are_checked_in_user_bulk_batches(
    cloud: Sandbox,
    jira_settings: Callable[..., Settings],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """Within `jira.people_cache_seconds` nothing is asked again; after it, the known accounts
    are checked with ceil(known / 100) user/bulk requests, no per-person search."""
    _reset(cloud)
    clock = Clock()
    target = _target(cloud, jira_settings, clock)
    people = _everyone(cloud)
    target.unresolved(people)
    known = {e for e, a in target.people.cache.items() if a is not None}
    _reset(cloud)
    target.unresolved(people)
    assert _user_calls(calls(cloud)) == {}
    clock.now += 3601
    target.unresolved(people)
    used = _user_calls(calls(cloud))
    assert 1 <= used["GET /rest/api/3/user/bulk"] <= ceil(len(known) / BULK_IDS)
    assert "GET /rest/api/3/user/search" not in used or used["GET /rest/api/3/user/search"] <= (
        len(people) - len(known)
    )
    assert {e for e, a in target.people.cache.items() if a is not None} == known


def test_an_account_gone_inactive_is_forgotten_at_its_check(
    cloud: Sandbox, jira_settings: Callable[..., Settings]
) -> None:
    """A preloaded account that user/bulk shows inactive is dropped and looked up by e-mail
    again (the search finds no active user: the person becomes a gap)."""
    clock = Clock()
    target = _target(cloud, jira_settings, clock)
    inactive = next(u for u in cloud.estate.people if u.in_jira and not u.active and u.email)
    target.people.preload({inactive.email: inactive.jira_account_id})
    person = Person(email=inactive.email, name=inactive.name)
    assert target.unresolved([person]) == (person,)
    assert target.people.cache[inactive.email.lower()] is None


def _bulk(site: Sandbox, **params: Any) -> requests.Response:
    return requests.get(
        f"{site.jira_url}/rest/api/3/user/bulk",
        params=params,
        auth=("slm-sync@example.com", "token"),
        timeout=5,
    )


def test_the_stand_in_pages_user_bulk_as_cloud_does(cloud: Sandbox) -> None:
    """maxResults defaults to 10 and is capped; pages follow by startAt up to isLast; unknown
    ids are left out; no accountId is a 400."""
    accounts = [p.jira_account_id for p in cloud.estate.people if p.in_jira][:150]
    first = _bulk(cloud, accountId=[*accounts, "no-such-account"]).json()
    assert (first["maxResults"], first["total"], first["isLast"]) == (10, 150, False)
    big = _bulk(cloud, accountId=accounts, maxResults=1000).json()
    assert big["maxResults"] == 100 and len(big["values"]) == 100 and not big["isLast"]
    rest = _bulk(cloud, accountId=accounts, maxResults=100, startAt=100).json()
    assert rest["isLast"] and len(rest["values"]) == 50
    assert {u["accountId"] for u in [*big["values"], *rest["values"]]} == set(accounts)
    assert _bulk(cloud).status_code == 400


@pytest.fixture(scope="module")
def datacenter() -> Iterator[Sandbox]:
    running = _start("datacenter", index_lag_ms=0, services=3, sla_records=50)
    yield running
    running.stop()


def test_data_center_has_no_user_bulk(datacenter: Sandbox) -> None:
    response = requests.get(
        f"{datacenter.jira_url}/rest/api/2/user/bulk",
        params={"accountId": "x"},
        headers={"Authorization": "Bearer pat"},
        timeout=5,
    )
    assert response.status_code == 404


def test_data_center_trusts_preloaded_people_and_searches_again_after_the_expiry(
    datacenter: Sandbox,
    jira_settings: Callable[..., Settings],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """Without user/bulk, a preloaded user name is used without a call; once
    `jira.people_cache_seconds` passed in this process, the person is searched for again."""
    _reset(datacenter)
    clock = Clock()
    target = _target(datacenter, jira_settings, clock)
    user = next(p for p in datacenter.estate.people if p.in_jira and p.active and p.email)
    target.people.preload({user.email: user.jira_name})
    person = Person(email=user.email, name=user.name)
    target.unresolved([person])
    assert _user_calls(calls(datacenter)) == {}
    clock.now += 3601
    target.unresolved([person])
    assert _user_calls(calls(datacenter)) == {"GET /rest/api/2/user/search": 1}
