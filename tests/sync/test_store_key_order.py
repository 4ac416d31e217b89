"""`StateStore.store_pages` leaves what writing its pages one after the other would, written in
key order: a pull's transaction and a webhook's announced records (or another replica's pull)
writing the same mirror rows on PostgreSQL lock them in one order and do not deadlock."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import pytest

import sync.state.store as store_module
from sync.state import StateStore, open_store
from sync.state.store import MirrorRecord, PageWrite

SYSTEM = "servicenow"


def _record(stream: str, key: str, value: str) -> MirrorRecord:
    return MirrorRecord(stream=stream, key=key, body={"value": value}, service_key="svc")


def _bodies(store: StateStore, stream: str) -> dict[str, Any]:
    return {r.key: r.body.get("value") for r in store.mirrored(stream)}


def test_pages_leave_what_writing_them_in_order_would(store: StateStore) -> None:
    """A key written twice keeps the last; a key forgotten by a later page is gone, one
    forgotten then mirrored again (same or later page) stays; the cursor is the last page's."""
    store.store_pages(SYSTEM, [PageWrite("material", [_record("skipped", "material:old", "o")],
                                         None)])  # fmt: skip
    pages = [
        PageWrite("material", [_record("material", "m2", "first"),
                               _record("skipped", "material:m9", "skip")],
                  ("2025-01-01 00:00:00", "m2")),
        PageWrite("material", [_record("material", "m2", "second"),
                               _record("material", "m1", "one")],
                  ("2025-01-02 00:00:00", "m1"), ("skipped", ["material:old", "material:m1"])),
        PageWrite("material", [_record("skipped", "material:m1", "again")],
                  ("2025-01-03 00:00:00", "m3"), ("skipped", ["material:m9", "material:m1"])),
    ]  # fmt: skip
    store.store_pages(SYSTEM, pages)
    assert _bodies(store, "material") == {"m1": "one", "m2": "second"}
    assert _bodies(store, "skipped") == {"material:m1": "again"}
    assert store.cursor(SYSTEM, "material") == ("2025-01-03 00:00:00", "m3")


def test_two_writers_of_the_same_rows_in_opposite_orders_both_commit(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores (two replicas) write rows a and b in opposite page orders, each pausing
    after its first write until the other has written too: written page by page, each
    would hold one row the other waits for (PostgreSQL: "deadlock detected", one cycle
    failed). In key order the second waits for the first, and both commit."""
    first, second = open_store(postgres_url), open_store(postgres_url)
    met = threading.Barrier(2)
    upsert = store_module._upsert_records

    def pausing(connection: Any, mirrored: Sequence[MirrorRecord]) -> None:
        upsert(connection, mirrored)
        # the other writer may wait on a row of ours: time out and go on
        with contextlib.suppress(threading.BrokenBarrierError):
            met.wait(timeout=3)

    monkeypatch.setattr(store_module, "_upsert_records", pausing)
    errors: list[BaseException] = []

    def write(store: StateStore, order: str, tag: str) -> None:
        pages = [PageWrite("material", [_record("material", k, tag)], None) for k in order]
        try:
            store.store_pages(SYSTEM, pages)
        except BaseException as error:
            errors.append(error)

    try:
        writers = [
            threading.Thread(target=write, args=(first, "ba", "first")),
            threading.Thread(target=write, args=(second, "ab", "second")),
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=60)
        assert errors == []
        rows = _bodies(first, "material")
        assert set(rows) == {"a", "b"} and len(set(rows.values())) == 1  # one writer's, whole
    finally:
        first.close()
        second.close()
