"""The CMDB read incrementally, end to end: ServiceNow stand-in → source → pull → mirror.

Counted per table read (never time): an idle cycle at 300 services reads each table at most
once, one request each, whatever the estate size; a new relation walks on only from the CI it
leads to (the other services' relations are not read again) and changes only that service's
components; a deleted relation is noticed through `sys_audit_delete` the next cycle, or, where the
integration user cannot read that table, by the periodic full walk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from config import Settings
from connectors import Pacer
from connectors.servicenow import ServiceNowSource, build_guard
from connectors.servicenow.batch import BatchAnswer, ListRequest
from connectors.servicenow.client import PysnowTableClient, TableResult
from connectors.servicenow.wiring import build_client
from mapping import load_mappings
from sandbox import Sandbox
from sync.pull import PullSummary, pull
from sync.state import StateStore

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
BASE = datetime(2025, 6, 2, 8, 0, 0, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("no_retry_waits")


class Counting:
    """A TableClient that counts page reads per table (sent alone or inside a batch call) and
    keeps their queries; `http` counts the HTTP calls (a batch is one)."""

    def __init__(self, inner: PysnowTableClient) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.queries: list[tuple[str, str]] = []
        self.http = 0

    def list(self, table: str, *, query: str, fields: Sequence[str], limit: int) -> TableResult:
        self.calls[table] += 1
        self.queries.append((table, query))
        self.http += 1
        return self.inner.list(table, query=query, fields=fields, limit=limit)

    def batch_list(self, asked: Sequence[ListRequest]) -> BatchAnswer:
        for request in asked:
            self.calls[request.table] += 1
            self.queries.append((request.table, request.query))
        self.http += 1
        return self.inner.batch_list(asked)

    def reset(self) -> None:
        self.calls.clear()
        self.queries.clear()
        self.http = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def big() -> Iterator[Sandbox]:
    with Sandbox(seed=11, services=300, sla_records=600, now=FIXED_NOW) as running:
        yield running


@pytest.fixture
def small() -> Iterator[Sandbox]:
    with Sandbox(seed=3, services=6, sla_records=100, now=FIXED_NOW) as running:
        yield running


def _source(site: Sandbox, clock: Clock, **servicenow: Any) -> tuple[ServiceNowSource, Counting]:
    section: dict[str, Any] = {
        "url": site.servicenow_url,
        "username": "integration.user",
        "password": "secret",
        "requests_per_second": 10000,
        "overlap_seconds": 60,
    }
    section.update(servicenow)
    settings = Settings(servicenow=section)
    counting = Counting(build_client(settings))
    guard = build_guard(settings, Pacer(10000, burst=4))
    return ServiceNowSource(counting, settings.servicenow, guard, clock=clock), counting


def _cycle(source: ServiceNowSource, store: StateStore, until: datetime) -> PullSummary:
    return pull(source, load_mappings("servicenow"), store, until=until)


def test_an_idle_cycle_reads_each_table_once_whatever_the_estate_size(
    big: Sandbox, sqlite_store: StateStore
) -> None:
    """After a cold pull of 300 services, a cycle with nothing changed reads each table once
    (no services re-read, no relation walk, no CI or people lookups), all in one batch call,
    and stores nothing; the cold pull needed dozens of calls."""
    source, counting = _source(big, Clock())
    _cycle(source, sqlite_store, BASE)
    cold = counting.http
    counting.reset()
    idle = _cycle(source, sqlite_store, BASE + timedelta(minutes=5))
    assert all(n == 1 for n in counting.calls.values()), counting.calls
    # services, relations, deleted relations, CIs, agreements, SLA records, CSAT, knowledge
    # and problems: 9 tables, one read each; people are refreshed hourly (0 here).
    assert sum(counting.calls.values()) <= 9
    assert counting.http == 1 < cold
    assert "sys_user" not in counting.calls and "cmdb_ci_service" in counting.calls
    assert sum(idle.read.values()) == 0


def test_a_new_relation_walks_on_only_from_the_ci_it_leads_to(
    small: Sandbox, sqlite_store: StateStore
) -> None:
    """A relation added from one service to a new CI (which depends on a known one) reads the
    relations of the new CI alone and stores just that CI, reached from that service only."""
    app, estate = small.servicenow, small.estate
    source, counting = _source(small, Clock())
    _cycle(source, sqlite_store, BASE)
    service = estate.services[0].sys_id
    before = {r.key: r.body for r in sqlite_store.mirrored("component")}
    app.clock = BASE + timedelta(minutes=1)
    type_id = app.store.rows("cmdb_rel_ci")[0]["type"]
    new_ci = app.insert("cmdb_ci_server", name="new-db-host")["sys_id"]
    app.insert("cmdb_rel_ci", parent=service, child=new_ci, type=type_id)
    counting.reset()
    summary = _cycle(source, sqlite_store, BASE + timedelta(minutes=2))
    walks = [q for table, q in counting.queries if table == "cmdb_rel_ci" and "parentIN" in q]
    assert walks and all(f"parentIN{new_ci}^" in q for q in walks)
    assert summary.read["component"] == 1
    after = {r.key: r.body for r in sqlite_store.mirrored("component")}
    assert set(after) - set(before) == {new_ci}
    assert {k: v for k, v in after.items() if k != new_ci} == before


def _leaf_relation(site: Sandbox) -> tuple[str, str]:
    """A new CI that only a new relation from the first service names: (relation, CI)."""
    app = site.servicenow
    app.clock = BASE - timedelta(hours=1)
    type_id = app.store.rows("cmdb_rel_ci")[0]["type"]
    child = app.insert("cmdb_ci_server", name="leaf-host")["sys_id"]
    service = site.estate.services[0].sys_id
    relation = app.insert("cmdb_rel_ci", parent=service, child=child, type=type_id)["sys_id"]
    return relation, child


def test_a_deleted_relation_is_noticed_through_sys_audit_delete(
    small: Sandbox, sqlite_store: StateStore
) -> None:
    """Deleting the only relation to a CI removes that CI from the mirror on the next cycle."""
    relation, child = _leaf_relation(small)
    source, counting = _source(small, Clock())
    _cycle(source, sqlite_store, BASE)
    assert child in {r.key for r in sqlite_store.mirrored("component")}
    small.servicenow.clock = BASE + timedelta(minutes=1)
    small.servicenow.delete("cmdb_rel_ci", relation)
    counting.reset()
    _cycle(source, sqlite_store, BASE + timedelta(minutes=2))
    assert "sys_audit_delete" in counting.calls
    assert child not in {r.key for r in sqlite_store.mirrored("component")}


def test_a_deleted_service_takes_its_own_components_along(
    small: Sandbox, sqlite_store: StateStore
) -> None:
    """Deleting a service (an instance deletes its relations with it) drops the CIs only it
    reached, from sys_audit_delete, without a full walk."""
    _, child = _leaf_relation(small)
    source, counting = _source(small, Clock())
    _cycle(source, sqlite_store, BASE)
    service = small.estate.services[0].sys_id
    only_its = {
        r.key for r in sqlite_store.mirrored("component") if r.body.get("service_keys") == [service]
    } | {child}
    small.servicenow.clock = BASE + timedelta(minutes=1)
    small.servicenow.delete("cmdb_ci_service", service)
    counting.reset()
    _cycle(source, sqlite_store, BASE + timedelta(minutes=2))
    assert counting.calls["cmdb_ci_service"] == 1  # the services stream's own read, no walk
    assert not [q for t, q in counting.queries if t == "cmdb_rel_ci" and "parentIN" in q]
    assert not only_its & {r.key for r in sqlite_store.mirrored("component")}
    assert [q for t, q in counting.queries if t == "sys_audit_delete"]


def test_without_read_on_sys_audit_delete_the_periodic_walk_finds_deletions(
    small: Sandbox, sqlite_store: StateStore
) -> None:
    """An integration user who cannot read sys_audit_delete gets one warning; the deletion is
    found by the full walk `servicenow.cmdb_rewalk_seconds` later, not before."""
    small.knobs.update({"servicenow_denied_tables": ["sys_audit_delete"]})
    clock = Clock()
    relation, child = _leaf_relation(small)
    source, counting = _source(small, clock, cmdb_rewalk_seconds=3600)
    _cycle(source, sqlite_store, BASE)
    small.servicenow.clock = BASE + timedelta(minutes=1)
    small.servicenow.delete("cmdb_rel_ci", relation)
    with capture_logs() as logs:
        _cycle(source, sqlite_store, BASE + timedelta(minutes=2))
    assert [e for e in logs if e["event"] == "servicenow.audit_delete_unreadable"]
    assert child in {r.key for r in sqlite_store.mirrored("component")}
    counting.reset()
    _cycle(source, sqlite_store, BASE + timedelta(minutes=3))
    assert "sys_audit_delete" not in counting.calls  # asked once, not every cycle
    clock.now += 3600
    _cycle(source, sqlite_store, BASE + timedelta(minutes=4))
    assert child not in {r.key for r in sqlite_store.mirrored("component")}


def test_people_newly_named_are_looked_up_at_once_and_changes_read_after_the_expiry(
    small: Sandbox, sqlite_store: StateStore
) -> None:
    """A component that names a new owner brings that person in the same cycle (one sys_idIN
    lookup); a known person's change is read from sys_user once
    `servicenow.people_refresh_seconds` passed, not every cycle."""
    app = small.servicenow
    clock = Clock()
    source, counting = _source(small, clock, people_refresh_seconds=3600)
    _cycle(source, sqlite_store, BASE)
    people = {r.key: r.body for r in sqlite_store.mirrored("person")}
    newcomer = next(r["sys_id"] for r in app.store.rows("sys_user") if r["sys_id"] not in people)
    component = next(iter(r.key for r in sqlite_store.mirrored("component")))
    app.clock = BASE + timedelta(minutes=1)
    app.update("cmdb_ci", component, owned_by=newcomer)
    counting.reset()
    _cycle(source, sqlite_store, BASE + timedelta(minutes=2))
    assert counting.calls["sys_user"] == 1
    assert newcomer in {r.key for r in sqlite_store.mirrored("person")}

    known = next(iter(people))
    app.clock = BASE + timedelta(minutes=3)
    app.update("sys_user", known, first_name="Renamed", name="Renamed Person")
    counting.reset()
    _cycle(source, sqlite_store, BASE + timedelta(minutes=4))
    assert "sys_user" not in counting.calls
    clock.now += 3600
    _cycle(source, sqlite_store, BASE + timedelta(minutes=5))
    assert counting.calls["sys_user"] >= 1
    body = {r.key: r.body for r in sqlite_store.mirrored("person")}[known]
    assert "Renamed" in str(body)


def test_a_pull_that_fails_midway_gets_the_changed_components_again(
    small: Sandbox, sqlite_store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source remembers what it delivered only once the pull took every page: when storing
    the component page fails, the next cycle delivers the new CI again."""
    app, estate = small.servicenow, small.estate
    source, _ = _source(small, Clock())
    _cycle(source, sqlite_store, BASE)
    app.clock = BASE + timedelta(minutes=1)
    type_id = app.store.rows("cmdb_rel_ci")[0]["type"]
    new_ci = app.insert("cmdb_ci_server", name="late-host")["sys_id"]
    app.insert("cmdb_rel_ci", parent=estate.services[1].sys_id, child=new_ci, type=type_id)
    original = sqlite_store.store_pages

    def failing(system: str, pages: Any) -> Any:
        if any(page.stream == "component" for page in pages):
            raise RuntimeError("disk full")
        return original(system, pages)

    monkeypatch.setattr(sqlite_store, "store_pages", failing)
    with pytest.raises(RuntimeError):
        _cycle(source, sqlite_store, BASE + timedelta(minutes=2))
    monkeypatch.setattr(sqlite_store, "store_pages", original)
    _cycle(source, sqlite_store, BASE + timedelta(minutes=3))
    assert new_ci in {r.key for r in sqlite_store.mirrored("component")}
