"""Faults stay local: one bad answer fails at most its own call, and the next cycle mends it.

End to end over HTTP (ServiceNow sandbox as source, Jira Cloud sandbox as target), with the
sandbox's route-scoped faults: a person whose user search answers garbage, charts whose upload
answers 503. The run goes on for every other ticket, and the next cycle completes the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from config import Settings
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine
from sync.state import StateStore, open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    running = Sandbox(seed=17, services=4, sla_records=600, index_lag_ms=100).start()
    yield running
    running.stop()


@pytest.fixture
def settings(site: Sandbox, tmp_path: Path) -> Settings:
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.2
    settings.jira.add_watchers = True
    settings.review.selection = [s.sys_id for s in site.estate.services][:2]
    return settings


@pytest.fixture
def store(settings: Settings) -> Iterator[StateStore]:
    opened = open_store(settings.sync.resolved_state_url())
    yield opened
    opened.close()


def _faults(site: Sandbox, spec: str) -> None:
    response = requests.post(f"{site.jira_url}/__sandbox/knobs", json={"faults": spec}, timeout=5)
    assert response.status_code == 200, response.text


def _tickets(site: Sandbox) -> dict[str, dict[str, Any]]:
    created = requests.get(f"{site.jira_url}/__sandbox/created", timeout=5).json()["tickets"]
    return {next(x for x in t["labels"] if x.startswith("slm:")): t for t in created}


def test_a_person_whose_lookup_fails_gets_their_ticket_next_cycle(
    site: Sandbox, settings: Settings, store: StateStore
) -> None:
    """A user search answering a cut-off body for one email (after retries) fails only that
    person: every ticket is still created, that person's review goes to the fallback assignee,
    and the next cycle, with the lookup working, assigns it to them."""
    planned = Engine.from_settings(settings, store).run_once(dry_run=True)
    review = next(t for t in planned.tickets if t.key.endswith(":review") and t.assignee)
    assert review.assignee is not None and review.assignee.email
    email = review.assignee.email
    _faults(site, f"malformed=1.0,only=GET /rest/api/3/user/search?query={email}")
    with capture_logs() as logs:
        first = Engine.from_settings(settings, store).run_once()
    assert first.summary.as_counts()["failed"] == 0
    assert any(e["event"] == "jira.person_lookup_failed" for e in logs)
    ticket = _tickets(site)[review.key]
    assert ticket["assignee"]["email"] != email, "written with the fallback this cycle"
    _faults(site, "")
    second = Engine.from_settings(settings, store).run_once()
    assert second.summary.as_counts()["failed"] == 0
    assert _tickets(site)[review.key]["assignee"]["email"] == email
    third = Engine.from_settings(settings, store).run_once()
    assert third.summary.as_counts()["updated"] == 0, "settled: nothing left to mend"


def test_a_chart_upload_that_fails_is_uploaded_next_cycle_exactly_once(
    site: Sandbox, settings: Settings, store: StateStore
) -> None:
    """Every follow-up call on existing issues answers 503 (a proxy in trouble): the tickets
    are created and the run reports no failed ticket; the chart and watcher steps stay pending
    and the next cycle completes them, each review carrying its chart once."""
    _faults(site, "5xx=1.0,only=POST /rest/api/3/issue/SLM-*")
    with capture_logs() as logs:
        first = Engine.from_settings(settings, store).run_once()
    assert first.summary.as_counts()["failed"] == 0
    failed_steps = {e["step"] for e in logs if e["event"] == "step.failed"}
    assert "chart" in failed_steps
    reviews = [k for k in _tickets(site) if k.endswith(":review")]
    assert reviews and all(not _tickets(site)[k]["attachments"] for k in reviews)
    _faults(site, "")
    Engine.from_settings(settings, store).run_once()
    Engine.from_settings(settings, store).run_once()
    tickets = _tickets(site)
    assert {k: len(tickets[k]["attachments"]) for k in reviews} == dict.fromkeys(reviews, 1)
    assert any(t["watchers"] for t in tickets.values()), "watchers added once the step could run"


def test_an_adopted_ticket_keeps_its_chart_instead_of_a_second_copy(
    site: Sandbox, settings: Settings, store: StateStore
) -> None:
    """With the ledger lost, the next run adopts every ticket by its key and recognises each
    chart by name and content hash: nothing is uploaded again."""
    Engine.from_settings(settings, store).run_once()
    store.forget_ledger("jira")
    Engine.from_settings(settings, store).run_once()
    tickets = _tickets(site)
    reviews = [k for k in tickets if k.endswith(":review")]
    assert {k: len(tickets[k]["attachments"]) for k in reviews} == dict.fromkeys(reviews, 1)


def test_a_refreshed_chart_replaces_its_attachment(
    site: Sandbox, settings: Settings, store: StateStore
) -> None:
    """New SLA data changes a review's chart: the next cycle uploads the new chart and removes
    the old one, so the ticket keeps exactly one file of that name, with the new content."""
    Engine.from_settings(settings, store).run_once()
    before = {k: t["attachments"] for k, t in _tickets(site).items() if k.endswith(":review")}
    service = settings.review.selection[0]
    incidents = {i.sys_id for i in site.estate.incidents if i.business_service == service}
    met = [r for r in site.estate.sla_records if r.task in incidents and not r.has_breached]
    for record in met[:20]:
        site.servicenow.update("task_sla", record.sys_id, has_breached="true")
    Engine.from_settings(settings, store).run_once()
    after = {k: t["attachments"] for k, t in _tickets(site).items() if k.endswith(":review")}
    assert all(len(files) == 1 for files in after.values()), after
    changed = [k for k in after if after[k] != before[k]]
    assert changed, "the refreshed review's chart was replaced"


def test_watchers_follow_the_people_list_and_leave_self_watchers_alone(
    site: Sandbox, settings: Settings, store: StateStore
) -> None:
    """An LT member dropped from the roles stops watching the tickets slm-sync made them watch;
    the others stay, and someone who chose to watch a ticket themselves is never removed."""
    Engine.from_settings(settings, store).run_once()
    leaving = settings.review.roles.lt_members[-1].email
    assert leaving is not None
    watched = {k: t for k, t in _tickets(site).items() if _watching(t, leaving)}
    assert watched, "the LT member watches some tickets"
    key, ticket = next(iter(watched.items()))
    volunteer = next(
        u
        for u in site.estate.people
        if u.in_jira
        and not u.jira_email_hidden
        and u.email != leaving
        and not _watching(ticket, u.email)
    )
    account = requests.get(
        f"{site.jira_url}/rest/api/3/user/search",
        params={"query": volunteer.email},
        auth=("slm-demo", "demo-api-token"),
        timeout=5,
    ).json()[0]["accountId"]
    requests.post(
        f"{site.jira_url}/rest/api/3/issue/{ticket['key']}/watchers",
        json=account,
        auth=("slm-demo", "demo-api-token"),
        timeout=5,
    ).raise_for_status()
    settings.review.roles.lt_members = settings.review.roles.lt_members[:-1]
    time.sleep(settings.jira.index_lag_seconds)  # the person's watch reaches Jira's index first
    Engine.from_settings(settings, store).run_once()
    after = _tickets(site)
    assert not any(_watching(t, leaving) for t in after.values())
    assert _watching(after[key], volunteer.email), "a self-chosen watcher stays"


def _watching(ticket: dict[str, Any], email: str | None) -> bool:
    return any(w and w.get("email") == email for w in ticket["watchers"])
