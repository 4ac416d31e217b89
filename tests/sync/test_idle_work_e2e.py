"""An idle cycle does no work per review: no review planned again, no unit given to the
reconciler (no lease, no ledger read of its own), one read of the ledger for the whole cycle;
what a person does in one ticket is acted on in the next cycle, for exactly that review.
ServiceNow stand-in as the source, the Jira Cloud stand-in as the target over HTTP, the tests
acting as the people in the tickets (tests/sync/people.py). Work is counted, never timed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors import TicketRef
from review import TicketKind, review_ticket_key
from sandbox import Sandbox
from sync.engine import Engine, RunResult
from sync.reconcile import Action
from sync.state import StateStore, open_store

from .people import People
from .reviewing import reviewing_settings

pytestmark = pytest.mark.usefixtures("no_retry_waits")
REVIEWS = 6


@pytest.fixture
def site() -> Iterator[Sandbox]:
    running = Sandbox(seed=31, services=8, sla_records=600, index_lag_ms=0).start()
    yield running
    running.stop()


@dataclass
class Work:
    """What one cycle did, counted: reviews planned, units applied, ledger reads, spec hashes."""

    planned: int
    applied: int
    ledger_reads: int
    hashed: int


def _counted(engine: Engine, store: StateStore) -> tuple[RunResult, Work]:
    before = (engine.plans.planned, engine.units_applied, store.ledger_reads)
    hashed = engine.hashes.computed
    result = engine.run_once()
    work = Work(
        planned=engine.plans.planned - before[0],
        applied=engine.units_applied - before[1],
        ledger_reads=store.ledger_reads - before[2],
        hashed=engine.hashes.computed - hashed,
    )
    return result, work


def _started(site: Sandbox, tmp_path: Path) -> tuple[Engine, StateStore, RunResult]:
    settings = reviewing_settings(site, tmp_path, reviews=REVIEWS, index_lag_seconds=0)
    store = open_store(settings.sync.resolved_state_url())
    engine = Engine.from_settings(settings, store)
    first, work = _counted(engine, store)
    assert first.summary.as_counts()["created"] > 40
    assert work.planned == REVIEWS and work.applied == REVIEWS + 1  # the cycle's unit too
    engine.run_once()  # reads back the tickets the first cycle wrote
    return engine, store, first


def test_an_idle_cycle_plans_and_applies_no_review(site: Sandbox, tmp_path: Path) -> None:
    engine, store, first = _started(site, tmp_path)
    for _ in range(2):
        idle, work = _counted(engine, store)
        counts = idle.summary.as_counts()
        assert counts["unchanged"] == first.summary.as_counts()["created"]
        assert counts["created"] == counts["updated"] == counts["failed"] == 0
        assert work.planned == 0, "a review planned again although nothing changed"
        assert work.applied == 0, "a unit given to the reconciler although nothing changed"
        assert work.ledger_reads == 1, "the ledger is read once for the whole cycle"
        # Only the cycle ticket and its sub-tasks are specs made anew (their bodies carry the
        # ranking); every review's specs are last cycle's, their hashes kept.
        cycle_specs = [t for t in idle.tickets if t.service_key is None]
        assert 0 < work.hashed <= len(cycle_specs)
        assert idle.build.rebuilt == []
    store.close()


def test_a_persons_change_in_one_ticket_works_on_exactly_that_review(
    site: Sandbox, tmp_path: Path
) -> None:
    engine, store, first = _started(site, tmp_path)
    _counted(engine, store)  # idle
    service = engine.settings.review.selection[1]
    key = review_ticket_key(first.build.cycle.id, service)
    row = store.ledger_rows("jira")[key]
    ref = TicketRef(key=row.ticket_key or "", id=row.ticket_id or "", url=row.ticket_url)
    People(site, "jira").comment(ref, "Decision: raise the availability target to 99.95 %")

    after, work = _counted(engine, store)
    assert after.build.rebuilt == [service]
    assert work.planned == 1, "exactly the review whose ticket a person changed"
    assert work.applied == 1
    changed = [o for o in after.summary.outcomes if o.action is not Action.UNCHANGED]
    assert [(o.key, o.action) for o in changed] == [(key, Action.UPDATE)]
    assert not after.summary.failed
    meeting = after.build.packs[service].meeting
    assert meeting is not None
    assert [d.text for d in meeting.decisions] == ["raise the availability target to 99.95 %"]
    assert all(
        o.action is Action.UNCHANGED
        for o in after.summary.outcomes
        if o.kind != TicketKind.REVIEW.value or o.key != key
    )

    quiet, work = _counted(engine, store)  # the update is read back: nothing more to do
    assert work.planned == 0 and work.applied == 0
    assert quiet.summary.as_counts()["updated"] == 0
    store.close()
