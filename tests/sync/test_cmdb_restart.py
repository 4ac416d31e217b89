"""The CMDB mirror outlives the process: kept in the state store, on SQLite and PostgreSQL.

Counted per table read (never time): after a first sync, a new source and a new store object on
the same database (a restarted daemon, the next `sync --once`) make no more calls than an idle
cycle of the process that stayed up, and store nothing; a relation added while it was down
walks on from its CI alone; a pull that died midway, or state kept under other settings, makes
the next process walk cold; a replica that takes the pull over from another goes on from the
state the other saved, not from its own memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from mapping import load_mappings
from sandbox import Sandbox
from sync.pull import PullSummary, pull
from sync.source_state import SourceStateKeeper
from sync.state import StateStore, open_store
from tests.sync.test_incremental_cmdb import BASE, FIXED_NOW, Clock, Counting, _source

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    with Sandbox(seed=3, services=8, sla_records=100, now=FIXED_NOW) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


class Process:
    """One process's worth of sync: its own source, store object and kept-state keeper."""

    def __init__(self, site: Sandbox, url: str, clock: Clock, **servicenow: Any) -> None:
        self.source, self.counting = _source(site, clock, **servicenow)
        self.store = open_store(url)
        self.keeper = SourceStateKeeper()

    def cycle(self, minutes: int, *, full: bool = False) -> PullSummary:
        until = BASE + timedelta(minutes=minutes)
        mappings = load_mappings("servicenow")
        return pull(self.source, mappings, self.store, until=until, full=full, keeper=self.keeper)

    def close(self) -> None:
        self.store.close()


def _calls(counting: Counting) -> int:
    return sum(counting.calls.values())


def _components(store: StateStore) -> dict[str, Any]:
    return {r.key: r.body for r in store.mirrored("component")}


def test_a_restarted_process_costs_no_more_than_an_idle_cycle(site: Sandbox, url: str) -> None:
    """After a first sync and an idle cycle, a new process on the same database reads each
    table as often as the idle cycle did (no service re-read, no relation walk, no CI, people or
    relation type lookups) and stores nothing new."""
    clock = Clock()
    first = Process(site, url, clock)
    first.cycle(0)
    cold = _calls(first.counting)
    first.counting.reset()
    first.cycle(5)
    idle = dict(first.counting.calls)
    components = _components(first.store)
    first.close()

    second = Process(site, url, clock)
    with capture_logs() as logs:
        summary = second.cycle(10)
    assert [e for e in logs if e["event"] == "source_state.loaded"]
    assert dict(second.counting.calls) == idle, (second.counting.calls, idle)
    assert _calls(second.counting) < cold
    assert "cmdb_rel_type" not in second.counting.calls
    assert not [q for t, q in second.counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    assert summary.read["service"] == 0 and summary.read["sla_record"] == 0
    assert sum(summary.read.values()) - summary.unchanged.total() == 0  # nothing new stored
    assert _components(second.store) == components
    second.close()


def test_a_relation_added_while_down_walks_on_from_its_ci_alone(site: Sandbox, url: str) -> None:
    """A relation from one service to a new CI, added while no process ran, is read by the
    next process through the relation cursor it kept: the walk reads the new CI's relations
    alone and the new CI is stored for that service only."""
    clock = Clock()
    first = Process(site, url, clock)
    first.cycle(0)
    before = _components(first.store)
    first.close()
    app = site.servicenow
    app.clock = BASE + timedelta(minutes=1)
    type_id = app.store.rows("cmdb_rel_ci")[0]["type"]
    service = site.estate.services[0].sys_id
    new_ci = app.insert("cmdb_ci_server", name="new-db-host")["sys_id"]
    app.insert("cmdb_rel_ci", parent=service, child=new_ci, type=type_id)

    second = Process(site, url, clock)
    second.cycle(2)
    walks = [q for t, q in second.counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    assert walks and all(f"parentIN{new_ci}^" in q for q in walks)
    assert second.counting.calls["cmdb_ci_service"] == 1  # the services stream's own read
    after = _components(second.store)
    assert set(after) - set(before) == {new_ci}
    assert after[new_ci]["service_keys"] == [service]
    assert {k: v for k, v in after.items() if k != new_ci} == before
    second.close()


def test_the_full_walk_is_due_rewalk_seconds_after_the_last_whichever_process_made_it(
    site: Sandbox, url: str
) -> None:
    """`servicenow.cmdb_rewalk_seconds` counts from the last full walk, across restarts: a
    process started before it is due does not walk again, one started after it does."""
    clock = Clock()
    first = Process(site, url, clock, cmdb_rewalk_seconds=3600)
    first.cycle(0)
    first.close()
    clock.now += 1800
    second = Process(site, url, clock, cmdb_rewalk_seconds=3600)
    second.cycle(5)
    assert not [q for t, q in second.counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    second.close()
    clock.now += 1800
    third = Process(site, url, clock, cmdb_rewalk_seconds=3600)
    third.cycle(10)
    assert [q for t, q in third.counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    third.close()


def _late_service(site: Sandbox) -> str:
    """A new service with a relation to a new CI, added after the first cycle: the CI."""
    app = site.servicenow
    app.clock = BASE + timedelta(minutes=1)
    type_id = app.store.rows("cmdb_rel_ci")[0]["type"]
    service = app.insert("cmdb_ci_service", name="Late service")["sys_id"]
    ci = app.insert("cmdb_ci_server", name="late-host")["sys_id"]
    app.insert("cmdb_rel_ci", parent=service, child=ci, type=type_id)
    return str(ci)


def _failing_components(process: Process, monkeypatch: pytest.MonkeyPatch) -> None:
    original = process.store.store_pages

    def failing(system: str, pages: Any) -> Any:
        if any(page.stream == "component" for page in pages):
            raise RuntimeError("disk full")
        return original(system, pages)

    monkeypatch.setattr(process.store, "store_pages", failing)


def test_a_process_killed_after_storing_services_leaves_the_next_one_walking_cold(
    site: Sandbox, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new service stored by a pull that was killed before it saved the walk (no save at
    all) is not lost to the walk: the stored cursors no longer match the kept state, so the
    next process walks cold and the new service's components are read."""
    clock = Clock()
    first = Process(site, url, clock)
    first.cycle(0)
    ci = _late_service(site)
    _failing_components(first, monkeypatch)
    monkeypatch.setattr(first.keeper, "save_after_failure", lambda *args: None)  # killed
    with pytest.raises(RuntimeError):
        first.cycle(2)
    first.close()

    second = Process(site, url, clock)
    with capture_logs() as logs:
        second.cycle(3)
    assert [e for e in logs if e["event"] == "source_state.stale"]
    assert [q for t, q in second.counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    assert ci in _components(second.store)
    second.close()


def test_a_pull_that_failed_midway_saves_what_it_read_and_the_next_one_goes_on(
    site: Sandbox, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull that fails after storing the services page (the store refuses a component
    page) saves the walk as far as it went, with the cursors stored: the next pull, in this
    process or a new one, goes on without a cold walk and stores the new service's CI."""
    clock = Clock()
    first = Process(site, url, clock)
    first.cycle(0)
    ci = _late_service(site)
    _failing_components(first, monkeypatch)
    with pytest.raises(RuntimeError):
        first.cycle(2)
    first.close()

    second = Process(site, url, clock)
    with capture_logs() as logs:
        second.cycle(3)
    assert [e for e in logs if e["event"] == "source_state.loaded"]
    walks = [q for t, q in second.counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    assert not walks
    assert ci in _components(second.store)
    second.close()


def test_a_pull_without_keeper_on_the_same_store_makes_the_process_reload(
    site: Sandbox, url: str
) -> None:
    """A pull that keeps no state (an older command on the same store) moves the cursors
    behind a running process's back: that process's next pull does not go on from its
    memory (it would miss the services the other read) but walks cold."""
    clock = Clock()
    daemon = Process(site, url, clock)
    daemon.cycle(0)
    ci = _late_service(site)
    other, _ = _source(site, clock)
    pull(other, load_mappings("servicenow"), daemon.store, until=BASE + timedelta(minutes=2))
    with capture_logs() as logs:
        daemon.cycle(3)
    assert [e for e in logs if e["event"] == "source_state.stale"]
    assert ci in _components(daemon.store)
    daemon.close()


def test_state_kept_under_other_settings_is_not_used(site: Sandbox, url: str) -> None:
    """A process configured with another relation depth walks cold instead of going on from
    a mirror walked to another depth."""
    clock = Clock()
    first = Process(site, url, clock, relation_depth=1)
    first.cycle(0)
    first.close()
    second = Process(site, url, clock, relation_depth=3)
    second.cycle(5)
    assert "cmdb_rel_type" in second.counting.calls
    assert [q for t, q in second.counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    second.close()


def test_a_full_pull_walks_cold_whatever_is_kept(site: Sandbox, url: str) -> None:
    """`sync --once --full` reads everything: the kept state is not used, the walk starts
    from the services again, and what it finds is kept for the next process."""
    clock = Clock()
    first = Process(site, url, clock)
    first.cycle(0)
    first.close()
    second = Process(site, url, clock)
    second.cycle(5, full=True)
    assert [q for t, q in second.counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    second.close()
    third = Process(site, url, clock)
    third.cycle(10)
    assert not [q for t, q in third.counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    third.close()


def test_only_the_changed_items_are_written(site: Sandbox, url: str) -> None:
    """An idle cycle writes only the cursors that moved; a new relation writes its edge, its
    CI and the cursors, not the whole graph again."""
    clock = Clock()
    process = Process(site, url, clock)
    process.cycle(0)
    total = process.keeper.written
    process.cycle(5)
    idle = process.keeper.written
    app = site.servicenow
    app.clock = BASE + timedelta(minutes=6)
    type_id = app.store.rows("cmdb_rel_ci")[0]["type"]
    new_ci = app.insert("cmdb_ci_server", name="delta-host")["sys_id"]
    app.insert("cmdb_rel_ci", parent=site.estate.services[0].sys_id, child=new_ci, type=type_id)
    process.cycle(7)
    changed = process.keeper.written
    assert idle <= 2 < changed < 10 < total, (idle, changed, total)
    process.close()


def test_a_replica_taking_over_reloads_what_the_other_saved(
    site: Sandbox, postgres_url: str
) -> None:
    """Two replicas on one PostgreSQL store: A pulls, B pulls once, A pulls while a relation
    is added, then B takes over. B's memory is stale (it never saw the relation): it reloads
    A's saved mirror (the version moved) and reads nothing again."""
    clock = Clock()
    a = Process(site, postgres_url, clock)
    b = Process(site, postgres_url, clock)
    a.cycle(0)
    b.cycle(1)
    app = site.servicenow
    app.clock = BASE + timedelta(minutes=2)
    type_id = app.store.rows("cmdb_rel_ci")[0]["type"]
    new_ci = app.insert("cmdb_ci_server", name="seen-by-a")["sys_id"]
    app.insert("cmdb_rel_ci", parent=site.estate.services[1].sys_id, child=new_ci, type=type_id)
    a.cycle(3)
    assert new_ci in _components(a.store)
    a.counting.reset()
    a.cycle(4)
    idle = dict(a.counting.calls)
    b.counting.reset()
    with capture_logs() as logs:
        b.cycle(5)
    assert [e for e in logs if e["event"] == "source_state.loaded"]
    assert new_ci in b.source.cmdb.cis
    # no more calls per table than A's idle cycle (A re-read the new relation's overlap)
    assert all(n <= idle.get(table, 0) for table, n in b.counting.calls.items()), idle
    assert not [q for t, q in b.counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    assert new_ci in _components(b.store)
    a.close()
    b.close()


def test_the_kept_state_table_comes_with_revision_0006(postgres_url: str) -> None:
    """A store at revision 0005 upgrades (to 0006 and on to the latest) with the kept-state
    tables, empty."""
    old = open_store(postgres_url, migrate_to="0005")
    assert old.schema_version() == "0005"
    old.close()
    store = open_store(postgres_url)
    assert store.schema_version() == "0008"
    assert store.source_state("servicenow") == (None, {})
    with store.engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
    assert {"source_state", "source_saves"} <= tables
    store.close()


def test_a_save_after_another_replica_saved_writes_nothing(url: str) -> None:
    """The version guards the kept state: a save expecting an older version is refused."""
    store = open_store(url)
    assert store.save_source_state("x", {"edge": {"r1": ["p", "c"]}}, {}, expected=None) == 1
    assert store.save_source_state("x", {"edge": {"r2": ["p", "d"]}}, {}, expected=None) is None
    assert store.save_source_state("x", {}, {"edge": ["r1"]}, expected=1) == 2
    assert store.source_state("x") == (2, {})
    store.close()
