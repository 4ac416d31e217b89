"""`StateStore.store_pages` leaves what writing its pages one after the other would, written in
key order: a pull's transaction and a webhook's announced records (or another replica's pull)
writing the same mirror rows on PostgreSQL lock them in one order and do not deadlock."""

from __future__ import annotations

import contextlib
import threading
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


def _pausing(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Each of these store statements waits, once done, until the other writer has done one
    too (or 3 s: the other may wait on a row of ours) before its transaction goes on."""
    met = threading.Barrier(2)
    for name in names:
        statement = getattr(store_module, name)

        def pausing(*args: Any, statement: Any = statement) -> None:
            statement(*args)
            with contextlib.suppress(threading.BrokenBarrierError):
                met.wait(timeout=3)

        monkeypatch.setattr(store_module, name, pausing)


def _both_commit(stores: tuple[StateStore, StateStore], pages: list[list[PageWrite]]) -> None:
    errors: list[BaseException] = []

    def write(store: StateStore, mine: list[PageWrite]) -> None:
        try:
            store.store_pages(SYSTEM, mine)
        except BaseException as error:
            errors.append(error)

    pairs = zip(stores, pages, strict=True)
    writers = [threading.Thread(target=write, args=pair) for pair in pairs]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert errors == []


def test_two_writers_of_the_same_rows_in_opposite_orders_both_commit(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores (two replicas) write rows a and b in opposite page orders, each pausing
    after its first write until the other has written too: written page by page, each
    would hold one row the other waits for (PostgreSQL: "deadlock detected", one cycle
    failed). In key order the second waits for the first, and both commit."""
    first, second = open_store(postgres_url), open_store(postgres_url)
    try:
        _pausing(monkeypatch, "_upsert_records")
        pages = [
            [PageWrite("material", [_record("material", k, tag)], None) for k in order]
            for order, tag in (("ba", "first"), ("ab", "second"))
        ]
        _both_commit((first, second), pages)
        rows = _bodies(first, "material")
        assert set(rows) == {"a", "b"} and len(set(rows.values())) == 1  # one writer's, whole
    finally:
        first.close()
        second.close()


def test_a_writer_forgetting_what_the_other_writes_again_does_not_deadlock(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between two reads a record maps and another stops mapping: one writer forgets the
    skipped entry of X and writes Y's again, the other forgets Y's and writes X's. A delete
    locks its rows before the upserts: without locking every existing row in key order first,
    each held the row the other was about to write."""
    first, second = open_store(postgres_url), open_store(postgres_url)
    try:
        seeded = [_record("skipped", f"material:{k}", "old") for k in "XY"]
        first.store_pages(SYSTEM, [PageWrite("material", seeded, None)])
        _pausing(monkeypatch, "_delete_keys", "_upsert_records")
        pages = [
            [PageWrite("material", [_record("skipped", f"material:{again}", tag)], None,
                       ("skipped", [f"material:{gone}"]))]
            for gone, again, tag in (("X", "Y", "first"), ("Y", "X", "second"))
        ]  # fmt: skip
        _both_commit((first, second), pages)
        assert len(_bodies(first, "skipped")) == 1  # the later writer's outcome, whole
    finally:
        first.close()
        second.close()
