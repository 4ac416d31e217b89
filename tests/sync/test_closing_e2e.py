"""Closing is visible, and the last review is read from the target: end to end over HTTP with
ServiceNow as the source and Jira Cloud or ServiceNow as the target. The tests act as the
people through the stand-ins' REST APIs (closing sub-tasks, reopening a ticket)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from structlog.testing import capture_logs

from config import Settings
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.state import StateStore, open_store

JIRA_AUTH = ("slm-demo", "demo-api-token")
SN_AUTH = ("slm-demo", "demo-password")
JIRA_DONE, JIRA_TO_DO = "31", "11"

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    running = Sandbox(seed=23, services=4, sla_records=400, index_lag_ms=100).start()
    yield running
    running.stop()


def _settings(site: Sandbox, tmp_path: Path, target: str) -> Settings:
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.2
    settings.sync.target = target
    settings.review.selection = [s.sys_id for s in site.estate.services][:1]
    return settings


def _run(settings: Settings, store: StateStore, clock: datetime | None = None) -> RunResult:
    # People act just before each sync; Jira's search index takes their edits after a lag, and
    # the ticket book reads what the index has (as a person's edit reaches the next cycle).
    time.sleep(settings.jira.index_lag_seconds)
    engine = Engine.from_settings(settings, store)
    if clock is not None:
        engine.clock = lambda: clock
    return engine.run_once()


class People:
    """What people do in the target's UI, through its REST API."""

    def __init__(self, site: Sandbox, target: str) -> None:
        self.site, self.target = site, target

    def close(self, ticket: str, sys_id: str) -> None:
        self._move(ticket, sys_id, JIRA_DONE, "3")

    def reopen(self, ticket: str, sys_id: str) -> None:
        self._move(ticket, sys_id, JIRA_TO_DO, "2")

    def is_done(self, ticket: str, sys_id: str) -> bool:
        if self.target == "jira":
            response = requests.get(
                f"{self.site.jira_url}/rest/api/3/issue/{ticket}",
                params={"fields": "status"},
                auth=JIRA_AUTH,
                timeout=5,
            )
            category = response.json()["fields"]["status"]["statusCategory"]["key"]
            return bool(category == "done")
        response = requests.get(
            f"{self.site.servicenow_url}/api/now/table/vtb_task/{sys_id}",
            params={"sysparm_fields": "state"},
            auth=SN_AUTH,
            timeout=5,
        )
        return bool(response.json()["result"]["state"] in ("3", "4", "7"))

    def _move(self, ticket: str, sys_id: str, transition: str, state: str) -> None:
        if self.target == "jira":
            response = requests.post(
                f"{self.site.jira_url}/rest/api/3/issue/{ticket}/transitions",
                json={"transition": {"id": transition}},
                auth=JIRA_AUTH,
                timeout=5,
            )
        else:
            response = requests.patch(
                f"{self.site.servicenow_url}/api/now/table/vtb_task/{sys_id}",
                json={"state": state},
                auth=SN_AUTH,
                timeout=5,
            )
        assert response.status_code < 300, response.text


def _ticket(store: StateStore, target: str, key: str) -> tuple[str, str]:
    row = store.ledger_rows(target)[key]
    return row.ticket_key or "", row.ticket_id or ""


def _children(store: StateStore, target: str, parent: str) -> list[tuple[str, str]]:
    rows = store.ledger_rows(target).values()
    return [(r.ticket_key or "", r.ticket_id or "") for r in rows if r.parent_key == parent]


def _finish_review(store: StateStore, target: str, people: People, review: str) -> None:
    for ticket, sys_id in _children(store, target, review):
        people.close(ticket, sys_id)


@pytest.mark.parametrize("target", ["jira", "servicenow"])
def test_review_closes_when_its_sub_tasks_are_done_and_a_reopen_is_respected(
    site: Sandbox, tmp_path: Path, target: str
) -> None:
    """All sub-tasks done → the review ticket is closed at the next sync; a person reopening
    it keeps it open at the syncs after that; the cycle ticket closes with the cycle."""
    settings = _settings(site, tmp_path, target)
    people = People(site, target)
    store = open_store(settings.sync.resolved_state_url())
    first = _run(settings, store)
    cycle_id, service = first.build.cycle.id, settings.review.selection[0]
    review = f"slm:{cycle_id}:{service}:review"
    review_ticket = _ticket(store, target, review)
    _finish_review(store, target, people, review)
    with capture_logs() as logs:
        second = _run(settings, store)
    assert people.is_done(*review_ticket)
    assert [e["key"] for e in logs if e["event"] == "ticket.closed"] == [review]
    assert second.phase.state.value == "closing"

    people.reopen(*review_ticket)
    with capture_logs() as logs:
        _run(settings, store)
    assert not people.is_done(*review_ticket), "a person's reopen is respected"
    assert any(e["event"] == "close.reopen_respected" for e in logs)

    cycle = f"slm:{cycle_id}:cycle"
    cycle_ticket = _ticket(store, target, cycle)
    assert not people.is_done(*cycle_ticket)
    for activity in ("lessons_learned", "update_policies"):
        key = next(
            k for k in store.ledger_rows(target) if k.startswith(f"{cycle}:") and activity in k
        )
        people.close(*_ticket(store, target, key))
    third = _run(settings, store)
    assert third.phase.state.value == "closed"
    assert people.is_done(*cycle_ticket)
    assert not people.is_done(*review_ticket), "still the person's choice"
    store.close()


def test_a_sub_task_reopened_and_done_again_closes_the_review_once_more(
    site: Sandbox, tmp_path: Path
) -> None:
    """The condition changed (a sub-task was reopened): when it is done again, the review
    ticket a person had reopened is closed again, once."""
    settings = _settings(site, tmp_path, "jira")
    people = People(site, "jira")
    store = open_store(settings.sync.resolved_state_url())
    first = _run(settings, store)
    review = f"slm:{first.build.cycle.id}:{settings.review.selection[0]}:review"
    review_ticket = _ticket(store, "jira", review)
    _finish_review(store, "jira", people, review)
    _run(settings, store)
    people.reopen(*review_ticket)
    sub_task = _children(store, "jira", review)[0]
    people.reopen(*sub_task)
    _run(settings, store)
    assert not people.is_done(*review_ticket)
    people.close(*sub_task)
    _run(settings, store)
    assert people.is_done(*review_ticket)
    store.close()


def test_a_close_without_the_transition_is_logged_and_tried_again(
    site: Sandbox, tmp_path: Path
) -> None:
    """No transition matches jira.done_transition: the run succeeds, the event names it, and
    once the setting is fixed the next sync closes the review."""
    settings = _settings(site, tmp_path, "jira")
    settings.jira.done_transition = "Finished"
    people = People(site, "jira")
    store = open_store(settings.sync.resolved_state_url())
    first = _run(settings, store)
    review = f"slm:{first.build.cycle.id}:{settings.review.selection[0]}:review"
    _finish_review(store, "jira", people, review)
    with capture_logs() as logs:
        second = _run(settings, store)
    assert second.summary.as_counts()["failed"] == 0
    assert any(e["event"] == "close.no_transition" and e["key"] == review for e in logs)
    assert not people.is_done(*_ticket(store, "jira", review))
    settings.jira.done_transition = "Done"
    _run(settings, store)
    assert people.is_done(*_ticket(store, "jira", review))
    store.close()


def _review_reason(result: RunResult, service: str) -> str:
    candidate = next(c for c in result.build.candidates if c.service_key == service)
    return next(r.detail for r in candidate.reasons if r.factor == "time since last review")


@pytest.mark.parametrize("target", ["jira", "servicenow"])
@pytest.mark.parametrize("lose_state", [False, True], ids=["kept", "state-file-deleted"])
def test_second_year_shows_months_since_the_last_review(
    site: Sandbox, tmp_path: Path, target: str, lose_state: bool
) -> None:
    """A service reviewed last year ranks with the months since that review (and its pack
    names it); never-reviewed services say "never reviewed" — also when the state file was
    deleted between the years (the earlier review tickets are looked up in the target)."""
    settings = _settings(site, tmp_path, target)
    store = open_store(settings.sync.resolved_state_url())
    first = _run(settings, store)
    reviewed = settings.review.selection[0]
    assert _review_reason(first, reviewed) == "never reviewed"
    store.close()
    if lose_state:
        for path in (tmp_path / "data").glob("state.db*"):
            path.unlink()
    next_year = datetime.now(UTC) + timedelta(days=365)
    store = open_store(settings.sync.resolved_state_url())
    second = _run(settings, store, clock=next_year)
    store.close()
    assert second.build.cycle.id != first.build.cycle.id
    opened = first.build.cycle.opens.isoformat()
    assert _review_reason(second, reviewed).endswith(f"months since {opened}")
    assert _review_reason(second, reviewed) != _review_reason(first, reviewed)
    others = [c.service_key for c in second.build.candidates if c.service_key != reviewed]
    assert others and all(_review_reason(second, k) == "never reviewed" for k in others)
    previous = [
        m for m in second.build.packs[reviewed].materials if m.kind.value == "previous_review"
    ]
    assert [m.title for m in previous] == [
        f"Service review {first.build.cycle.id}, 12 months before this cycle"
    ]
    assert previous[0].number, "shown by its ticket's number, linking to it"
