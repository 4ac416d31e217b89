"""Late rows and read problems end to end: ServiceNow stand-in → pull → mirror → review packs.

Incremental reads re-read `servicenow.overlap_seconds` behind the cursor, so rows written late
into an already-read second (sys_id below or above the cursor's, or stamped in the past by a
clock further off than the configured skew) reach the mirror on the next cycle, once each;
rows already stored unchanged are neither mapped nor stored again. A relation to a CI that does
not exist reaches the affected service's pack as a gap naming the relation, and the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from config import Settings
from connectors import Cursor, Page, ReadError, Stream
from connectors.servicenow import ServiceNowSource
from mapping import SystemMapping, load_mappings
from sandbox import Sandbox
from sync.build import build_review
from sync.pull import SKIPPED, pull
from sync.state import StateStore

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
BASE = datetime(2025, 6, 2, 8, 0, 0, tzinfo=UTC)
STAMP = "%Y-%m-%d %H:%M:%S"


pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    with Sandbox(seed=3, services=3, sla_records=200, now=FIXED_NOW) as running:
        yield running


def _settings(site: Sandbox, **servicenow: Any) -> Settings:
    section: dict[str, Any] = {
        "url": site.servicenow_url,
        "username": "integration.user",
        "password": "secret",
        "requests_per_second": 10000,
        "page_size": 7,
    }
    section.update(servicenow)
    return Settings(servicenow=section)


def _sla_fields(site: Sandbox) -> dict[str, Any]:
    """The fields of a seeded SLA record that maps, to copy into new rows."""
    row = site.servicenow.store.rows("task_sla")[0]
    return {k: v for k, v in row.items() if not k.startswith("sys_")}


def _sys_id(prefix: str, n: int) -> str:
    return (prefix * 32)[:28] + f"{n:04x}"


def _insert(site: Sandbox, at: datetime, sys_ids: list[str]) -> None:
    site.servicenow.clock = at
    for sys_id in sys_ids:
        site.servicenow.insert("task_sla", sys_id=sys_id, **_sla_fields(site))


def _mirrored(store: StateStore) -> set[str]:
    return {r.key for r in store.mirrored("sla_record")}


class Spy:
    """The mappings of a pull, counting what is mapped; counts the store's page writes too."""

    def __init__(self, store: StateStore, mappings: SystemMapping, monkeypatch: Any) -> None:
        self.stored: list[str] = []
        self.mapped: list[str] = []
        self.mappings = mappings
        store_pages = store.store_pages

        def spy_store(system: str, pages: Any) -> None:
            self.stored += [page.stream for page in pages]
            store_pages(system, pages)

        monkeypatch.setattr(store, "store_pages", spy_store)

    def has(self, entity: str) -> bool:
        return self.mappings.has(entity)

    def map(self, entity: str, records: Any) -> Any:
        records = list(records)
        self.mapped += [entity] * len(records)
        return self.mappings.map(entity, records)

    def outcomes(self, entity: str, records: Any) -> Any:
        self.mapped += [entity] * len(records)
        return self.mappings.outcomes(entity, records)

    def entity(self, entity: str) -> Any:
        return self.mappings.entity(entity)


def test_late_rows_in_the_cursors_second_reach_the_mirror_once(
    site: Sandbox, sqlite_store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows written after a read into the cursor's second, with sys_ids below and above the
    cursor's, are all mirrored by the next incremental pull, each once; a pull with nothing
    new maps nothing and writes nothing."""
    settings = _settings(site)
    source = ServiceNowSource.from_settings(settings)
    mappings = load_mappings("servicenow")
    _insert(site, BASE, [_sys_id("8", n) for n in range(5)])
    pull(source, mappings, sqlite_store, until=BASE)
    cursor = sqlite_store.cursor("servicenow", "sla_record")
    assert cursor == (BASE.strftime(STAMP), _sys_id("8", 4))
    before = sqlite_store.count("sla_record")

    below = [_sys_id("0", n) for n in range(30)]  # sort before the cursor's sys_id
    above = [_sys_id("f", n) for n in range(30)]
    _insert(site, BASE, below + above)
    later = BASE + timedelta(minutes=1)
    summary = pull(source, mappings, sqlite_store, until=later)

    assert set(below + above) <= _mirrored(sqlite_store)
    assert sqlite_store.count("sla_record") == before + 60
    assert summary.read["sla_record"] - summary.unchanged["sla_record"] == 60
    assert sqlite_store.cursor("servicenow", "sla_record") == (BASE.strftime(STAMP), above[-1])

    spy = Spy(sqlite_store, mappings, monkeypatch)
    idle = pull(source, spy, sqlite_store, until=later)  # type: ignore[arg-type]
    assert idle.read["sla_record"] == idle.unchanged["sla_record"] == 65  # the overlap
    assert "sla_record" not in spy.stored and "sla_record" not in spy.mapped


def test_rows_stamped_by_a_clock_further_off_than_the_skew_are_read_within_the_overlap(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """With clock_skew_seconds 60 and overlap_seconds 600, rows stamped 5 minutes behind the
    cursor (a node whose clock is late by more than the skew) are read by the next pull; a row
    stamped an hour behind is beyond the overlap and waits for `--full`."""
    settings = _settings(site, clock_skew_seconds=60, overlap_seconds=600)
    source = ServiceNowSource.from_settings(settings)
    mappings = load_mappings("servicenow")
    _insert(site, BASE, [_sys_id("8", 0)])
    pull(source, mappings, sqlite_store, until=BASE)

    late = [_sys_id("a", n) for n in range(3)]
    _insert(site, BASE - timedelta(minutes=5), late)
    _insert(site, BASE - timedelta(hours=1), [_sys_id("b", 0)])
    pull(source, mappings, sqlite_store, until=BASE + timedelta(minutes=2))

    assert set(late) <= _mirrored(sqlite_store)
    assert _sys_id("b", 0) not in _mirrored(sqlite_store)
    pull(source, mappings, sqlite_store, until=BASE + timedelta(minutes=2), full=True)
    assert _sys_id("b", 0) in _mirrored(sqlite_store)


def test_a_relation_to_a_missing_ci_is_a_gap_of_its_service_and_a_log_event(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """A "Depends on" relation from a service to a CI that does not exist shows in that
    service's pack as a gap naming the relation's table and sys_id, is logged once (not again
    while unchanged), and its gap goes away once the relation is removed."""
    settings = _settings(site)
    source = ServiceNowSource.from_settings(settings)
    mappings = load_mappings("servicenow")
    app = site.servicenow
    service = site.estate.services[0].sys_id
    type_id = app.store.rows("cmdb_rel_type")[0]["sys_id"]
    missing_ci = "deadbeef" * 4
    relation = app.insert("cmdb_rel_ci", parent=service, child=missing_ci, type=type_id)
    relation_id = relation["sys_id"]

    with capture_logs() as logs:
        pull(source, mappings, sqlite_store, until=FIXED_NOW + timedelta(days=2))
    events = [e for e in logs if e["event"] == "pull.read_error"]
    assert [(e["table"], e["record_id"], e["services"]) for e in events] == [
        ("cmdb_rel_ci", relation_id, [service])
    ]
    assert missing_ci in events[0]["reason"]

    pack = _pack(sqlite_store, settings, service)
    (gap,) = [g for g in pack.gaps if relation_id in g.detail]
    assert "cmdb_rel_ci" in gap.detail and missing_ci in gap.detail

    with capture_logs() as logs:
        pull(source, mappings, sqlite_store, until=FIXED_NOW + timedelta(days=2))
    assert not [e for e in logs if e["event"] == "pull.read_error"]
    assert any(relation_id in g.detail for g in _pack(sqlite_store, settings, service).gaps)

    app.clock = FIXED_NOW + timedelta(days=2, minutes=1)  # deleted (and audited) after the read
    app.delete("cmdb_rel_ci", relation_id)
    pull(source, mappings, sqlite_store, until=FIXED_NOW + timedelta(days=3))
    assert not any(relation_id in g.detail for g in _pack(sqlite_store, settings, service).gaps)


def _pack(store: StateStore, settings: Settings, service: str) -> Any:
    build = build_review(store, settings, today=date(2025, 6, 1), selection=[service])
    return build.packs[service]


class _FakeSource:
    """A source whose SLA page reports a problem no service can be named for."""

    system = "fake"

    def read(
        self, stream: Stream, *, since: Cursor | None = None, until: datetime | None = None
    ) -> Iterator[Page]:
        if stream is Stream.SLA_RECORDS:
            problem = ReadError("task_sla", "0123456789abcdef0123456789abcdef", "no stamp")
            yield Page(stream, [], Cursor("2025-06-01 00:00:00", "x"), (problem, "plain text"))


def test_a_read_problem_without_a_service_is_listed_cycle_wide(
    sqlite_store: StateStore,
) -> None:
    """A problem the source cannot tie to a service (and a plugin's plain-text error) lands
    in the cycle-wide list of the build, naming its table and record, and in the log."""
    with capture_logs() as logs:
        pull(_FakeSource(), load_mappings("servicenow"), sqlite_store, until=None)
    logged = [(e["table"], e["record_id"]) for e in logs if e["event"] == "pull.read_error"]
    assert logged == [("task_sla", "0123456789abcdef0123456789abcdef"), ("sla_record", "unknown")]
    assert sqlite_store.count(SKIPPED) == 2
    build = build_review(sqlite_store, Settings(), today=date(2025, 6, 1), selection=[])
    (gap,) = build.unplaced
    assert gap.service_key is None
    assert "0123456789abcdef0123456789abcdef" in gap.detail and "task_sla" in gap.detail
    assert "plain text" in gap.detail
