"""The LT's selection end to end over HTTP, with Jira Cloud and ServiceNow as targets: tokens
as labels (Jira) or in work notes on the selection sub-task (ServiceNow), a typo told once,
a token taken back before the sub-task is done and never put back, the reviews opening at the
first sync after the sub-task is done, and a deleted state store finding the same selection.

The tests act as LT members through the stand-ins' REST APIs (tests/sync/people.py) and read
what people see: the cycle ticket's labels, text and comments."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from config import Settings
from connectors import TargetConnector, TicketRef, TicketState
from connectors.registry import make_target
from review import TicketKind
from review.document import document_text
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.state import open_store
from tests.sync.people import People

pytestmark = pytest.mark.usefixtures("no_retry_waits")

Target = Literal["jira", "servicenow"]
TOKEN = re.compile(r"slm-select-[a-z0-9][a-z0-9-]*")


class Cycle:
    """One installation against the sandbox: syncs, and the cycle's tickets as people see them."""

    def __init__(self, site: Sandbox, settings: Settings, target: Target, data: Path) -> None:
        self.site, self.settings, self.target, self.data = site, settings, target, data
        self.state_file = "state.db"
        self.people = People(site, target)

    def sync(self) -> RunResult:
        # People act just before each sync; Jira's search index takes their edits after a lag.
        time.sleep(self.settings.jira.index_lag_seconds)
        store = open_store(f"sqlite:///{self.data / self.state_file}")
        try:
            result = Engine.from_settings(self.settings, store).run_once()
        finally:
            store.close()
        assert result.summary.as_counts()["failed"] == 0, result.summary.failed
        return result

    def lose_state(self, name: str) -> None:
        """The state file is gone: the next sync starts from an empty store."""
        self.state_file = name

    def ref(self, key: str) -> TicketRef:
        found = self._connector().find([key])
        assert key in found, f"{key} is not in the target"
        return found[key]

    def read(self, ref: TicketRef) -> TicketState:
        return self._connector().state([ref], comments=True)[ref.key]

    def select(self, cycle: TicketRef, task: TicketRef, token: str) -> None:
        """A label on the cycle ticket (Jira), a work note on the selection sub-task (SN)."""
        if self.target == "jira":
            self.people.add_label(cycle, token)
        else:
            self.people.comment(task, token)

    def unselect(self, cycle: TicketRef, task: TicketRef, token: str) -> None:
        if self.target == "jira":
            self.people.remove_label(cycle, token)
        else:
            self.people.comment(task, f"remove: {token}")

    def _connector(self) -> TargetConnector:
        return make_target(self.settings)


@pytest.fixture(params=["jira", "servicenow"])
def cycle(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cycle]:
    site = Sandbox(seed=17, services=5, sla_records=400, index_lag_ms=50).start()
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.1
    settings.sync.target = request.param
    yield Cycle(site, settings, request.param, tmp_path / "data")
    site.stop()


def _tokens(result: RunResult) -> dict[str, str]:
    """token -> service key, read from the candidates table of the planned cycle ticket."""
    body = next(t for t in result.tickets if t.kind is TicketKind.CYCLE).body
    names = {s.name: s.key for s in result.build.services}
    found: dict[str, str] = {}
    for line in document_text(body).splitlines():
        tokens, named = TOKEN.findall(line), [k for n, k in names.items() if n in line]
        if len(tokens) == 1 and len(named) == 1:
            found.setdefault(tokens[0], named[0])
    return found


def _opened(cycle: Cycle) -> tuple[RunResult, TicketRef, TicketRef]:
    opened = cycle.sync()
    cycle_id = opened.build.cycle.id
    ticket = cycle.ref(f"slm:{cycle_id}:cycle")
    task = cycle.ref(f"slm:{cycle_id}:cycle:select_services")
    return opened, ticket, task


def test_reviews_open_at_the_first_sync_after_the_sub_task_and_a_removed_token_stays_gone(
    cycle: Cycle,
) -> None:
    """The LT selects two services and takes one back before closing the selection sub-task:
    nothing opens while it is open; the first sync after it is done opens exactly the one
    review; the label taken back is never put back; the reviews' tickets say so."""
    opened, ticket, task = _opened(cycle)
    tokens = _tokens(opened)
    assert len(tokens) >= 2 and all(not re.search(r"[0-9a-f]{32}", t) for t in tokens)
    (first, kept), (second, dropped) = list(tokens.items())[:2]
    cycle.select(ticket, task, first)
    cycle.select(ticket, task, second)
    waiting = cycle.sync()
    assert (waiting.phase.state.value, waiting.phase.selection) == ("selecting", ())
    assert not any(t.kind is TicketKind.REVIEW for t in waiting.tickets)
    cycle.unselect(ticket, task, second)
    cycle.people.close(task)
    reviewing = cycle.sync()
    assert reviewing.phase.state.value == "reviewing"
    assert reviewing.phase.selection == (kept,)
    assert [t.service_key for t in reviewing.tickets if t.kind is TicketKind.REVIEW] == [kept]
    assert dropped not in reviewing.phase.selection
    if cycle.target == "jira":
        assert second not in cycle.people.labels(ticket), "a removed token is never put back"
        assert first in cycle.people.labels(ticket)
    again = cycle.sync()
    assert again.summary.as_counts()["created"] == 0 and again.phase.selection == (kept,)
    if cycle.target == "jira":
        assert second not in cycle.people.labels(ticket)


def test_a_typo_token_is_told_once_with_the_nearest_match_and_the_cycle_goes_on(
    cycle: Cycle,
) -> None:
    """One typo among the tokens: one comment on the cycle ticket names it and the nearest
    token, across two syncs; the cycle ticket lists it as not matched; the sub-task closed,
    the good token's review opens and the typo is ignored."""
    opened, ticket, task = _opened(cycle)
    tokens = list(_tokens(opened))
    good, near = tokens[0], tokens[1]
    typo = near[:-1] + ("x" if near[-1] != "x" else "y")
    cycle.select(ticket, task, good)
    cycle.select(ticket, task, typo)
    cycle.sync()
    told = cycle.sync()
    comments = [c.text for c in cycle.read(ticket).comments if typo in c.text]
    assert len(comments) == 1, comments
    assert near in comments[0], "the comment names the nearest match"
    body = next(t for t in told.tickets if t.kind is TicketKind.CYCLE).body
    assert f"\u201c{typo}\u201d" in document_text(body), "listed as not matched"
    cycle.people.close(task)
    reviewing = cycle.sync()
    assert reviewing.phase.state.value == "reviewing"
    assert reviewing.phase.selection == (_tokens(opened)[good],)
    assert len([c for c in cycle.read(ticket).comments if typo in c.text]) == 1


def test_a_deleted_state_store_finds_the_same_selection_and_re_adds_no_label(
    cycle: Cycle,
) -> None:
    """Reviews opened, then a token taken back and the state file lost: the next sync finds
    the cycle and the reviewed services in the target, keeps both (a review ticket exists),
    creates nothing and puts no label back."""
    opened, ticket, task = _opened(cycle)
    tokens = list(_tokens(opened))
    for token in tokens[:2]:
        cycle.select(ticket, task, token)
    cycle.people.close(task)
    reviewing = cycle.sync()
    assert len(reviewing.phase.selection) == 2
    cycle.unselect(ticket, task, tokens[1])
    cycle.lose_state("state-after-loss.db")
    found = cycle.sync()
    assert found.phase.state.value == "reviewing"
    assert found.phase.selection == reviewing.phase.selection
    assert found.summary.as_counts()["created"] == 0
    if cycle.target == "jira":
        assert tokens[1] not in cycle.people.labels(ticket)
