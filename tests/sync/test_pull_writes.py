"""The pull writes mapped pages several to a transaction, each page with its cursor: fewer
commits than pages, the cursor never past records that are not stored, and what was mapped
before a read error or a stop is stored with its cursor. Independent streams are read in lanes
beside the others and every stream ends with its pages in order."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import sync.pull as pull_module
from connectors import ConnectorError, Cursor, Page, Stream
from mapping import load_mappings
from sync.pull import pull
from sync.state import PageWrite, StateStore, open_store

UNTIL = datetime(2026, 1, 1, tzinfo=UTC)


def _service(n: int) -> dict[str, str]:
    return {
        "sys_id": f"{n:032x}",
        "sys_updated_on": f"2025-01-01 00:{n // 60:02d}:{n % 60:02d}",
        "name": f"Service {n}",
        "sys_class_name": "cmdb_ci_service",
    }


class PagedSource:
    """Services in pages of `size` with cursors; fails before page `fail_at` if given."""

    system = "servicenow"

    def __init__(self, pages: int, size: int, *, fail_at: int | None = None) -> None:
        self.pages, self.size, self.fail_at = pages, size, fail_at
        self.threads: set[str] = set()

    def read(
        self, stream: Stream, *, since: Cursor | None = None, until: datetime | None = None
    ) -> Iterator[Page]:
        if stream is not Stream.SERVICES:
            return
        self.threads.add(threading.current_thread().name)
        for page in range(self.pages):
            if page == self.fail_at:
                raise ConnectorError("the instance went away")
            rows = [_service(page * self.size + n) for n in range(self.size)]
            last = rows[-1]
            yield Page(stream, rows, Cursor(last["sys_updated_on"], last["sys_id"]))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    state = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield state
    state.close()


def _count_writes(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> list[list[PageWrite]]:
    calls: list[list[PageWrite]] = []
    original = store.store_pages

    def spy(system: str, pages: Any) -> None:
        calls.append(list(pages))
        original(system, pages)

    monkeypatch.setattr(store, "store_pages", spy)
    return calls


def test_pages_are_written_several_to_a_transaction_each_with_its_cursor(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull_module, "FLUSH_ROWS", 25)  # 10-record pages: 3 to a write
    monkeypatch.setattr(pull_module, "FLUSH_SECONDS", 3600.0)
    calls = _count_writes(store, monkeypatch)
    summary = pull(PagedSource(7, 10), load_mappings("servicenow"), store, until=UNTIL)
    assert summary.read["service"] == 70
    assert [len(call) for call in calls] == [3, 3, 1]  # the last one when the stream ended
    assert len({r.key for r in store.mirrored("service")}) == 70
    last = _service(69)
    assert store.cursor("servicenow", "service") == (last["sys_updated_on"], last["sys_id"])


def test_a_read_error_stores_the_pages_mapped_before_it_and_no_cursor_beyond(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull_module, "FLUSH_ROWS", 10_000)  # nothing written until the end
    monkeypatch.setattr(pull_module, "FLUSH_SECONDS", 3600.0)
    with pytest.raises(ConnectorError):
        pull(PagedSource(5, 10, fail_at=3), load_mappings("servicenow"), store, until=UNTIL)
    assert len({r.key for r in store.mirrored("service")}) == 30
    last = _service(29)
    assert store.cursor("servicenow", "service") == (last["sys_updated_on"], last["sys_id"])


def test_a_stop_between_pages_stores_what_was_mapped_with_its_cursor(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull_module, "FLUSH_ROWS", 10_000)
    monkeypatch.setattr(pull_module, "FLUSH_SECONDS", 3600.0)

    class Stop(Exception):
        pass

    def on_page(stream: Stream, count: int) -> None:
        if len(pages_seen) == 1:
            raise Stop
        pages_seen.append(count)

    pages_seen: list[int] = []
    with pytest.raises(Stop):
        pull(PagedSource(5, 10), load_mappings("servicenow"), store, until=UNTIL,
             on_page=on_page)  # fmt: skip
    assert len({r.key for r in store.mirrored("service")}) == 20
    last = _service(19)
    assert store.cursor("servicenow", "service") == (last["sys_updated_on"], last["sys_id"])


def test_a_failing_write_leaves_the_cursor_where_the_stored_records_end(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull_module, "FLUSH_ROWS", 25)
    monkeypatch.setattr(pull_module, "FLUSH_SECONDS", 3600.0)
    original = store.store_pages
    writes = 0

    def failing(system: str, pages: Any) -> None:
        nonlocal writes
        writes += 1
        if writes >= 2:
            raise RuntimeError("disk full")
        original(system, pages)

    monkeypatch.setattr(store, "store_pages", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        pull(PagedSource(7, 10), load_mappings("servicenow"), store, until=UNTIL)
    assert len({r.key for r in store.mirrored("service")}) == 30  # the first write only
    last = _service(29)
    assert store.cursor("servicenow", "service") == (last["sys_updated_on"], last["sys_id"])


class LanedSource:
    """Services and SLA records, the SLA records named independent: the services' read waits
    until the SLA records' read has started, which one lane reading the streams one after the
    other (services first) never does."""

    system = "servicenow"
    independent_streams = (Stream.SLA_RECORDS,)

    def __init__(self) -> None:
        self.sla_started = threading.Event()
        self.threads: dict[Stream, str] = {}

    def read(
        self, stream: Stream, *, since: Cursor | None = None, until: datetime | None = None
    ) -> Iterator[Page]:
        self.threads[stream] = threading.current_thread().name
        if stream is Stream.SERVICES:
            assert self.sla_started.wait(timeout=10), "the streams were read one after another"
            yield from PagedSource(3, 5).read(stream)
        elif stream is Stream.SLA_RECORDS:
            self.sla_started.set()
            yield Page(stream, [], Cursor("2025-06-01 00:00:00"))


def test_independent_streams_are_read_in_lanes_of_their_own(store: StateStore) -> None:
    source = LanedSource()
    pull(source, load_mappings("servicenow"), store, until=UNTIL)
    assert source.threads[Stream.SERVICES] != source.threads[Stream.SLA_RECORDS]
    assert len({r.key for r in store.mirrored("service")}) == 15
    assert store.cursor("servicenow", "sla_record") == ("2025-06-01 00:00:00", "")


class WholeSource:
    """Services read whole every time (pages without a cursor), as a snapshot stream is."""

    system = "servicenow"

    def __init__(self, numbers: list[int]) -> None:
        self.numbers = numbers

    def read(
        self, stream: Stream, *, since: Cursor | None = None, until: datetime | None = None
    ) -> Iterator[Page]:
        if stream is Stream.SERVICES:
            yield Page(stream, [_service(n) for n in self.numbers], None)


def test_a_whole_read_prunes_what_it_no_longer_saw_and_an_incremental_one_keeps_no_keys(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream read whole loses the records the source no longer has; a stream read by its
    cursor prunes nothing and keeps no record keys in memory (a cold pull of a million SLA
    records would hold them all)."""
    mappings = load_mappings("servicenow")
    pull(WholeSource([1, 2, 3]), mappings, store, until=UNTIL)
    pull(WholeSource([1, 3]), mappings, store, until=UNTIL)
    assert [r.key for r in store.mirrored("service")] == [f"{1:032x}", f"{3:032x}"]

    kept: list[int] = []
    original = pull_module._prune

    def spy(stream: str, store_: StateStore, state: Any, *, full: bool) -> None:
        kept.append(len(state.seen))
        original(stream, store_, state, full=full)

    monkeypatch.setattr(pull_module, "_prune", spy)
    pull(PagedSource(3, 10), mappings, store, until=UNTIL)
    assert len({r.key for r in store.mirrored("service")}) == 30, "0-29 (1 and 3 among them)"
    assert kept and max(kept) == 0


def test_a_row_hashes_the_same_whatever_its_key_order_and_shared_strings() -> None:
    """Equal rows hash equal: read in another key order (a batch call's against the Table
    API's), or with their strings shared differently (marshal from version 3 writes a value
    referenced twice as a back-reference); other values or another stream hash apart."""
    import json as _json

    from sync.pull import source_hash

    read = _json.loads('{"sys_id": "a1", "stage": "completed", "has_breached": "completed"}')
    same = "complet" + "ed"
    again = {"has_breached": same, "stage": same, "sys_id": "a1"}
    held = [read["stage"]]  # another reference to one of the decoded strings
    assert source_hash("sla_record", read) == source_hash("sla_record", again)
    assert source_hash("sla_record", read) != source_hash("agreement", read)
    assert source_hash("sla_record", read) != source_hash("sla_record", {**read, "stage": "x"})
    # a plugin's own objects (not marshal's plain values) still hash, by their text
    from datetime import UTC, datetime

    moment = {"sys_id": "a1", "at": datetime(2026, 1, 1, tzinfo=UTC)}
    assert source_hash("sla_record", moment) == source_hash("sla_record", dict(moment))
    assert held
