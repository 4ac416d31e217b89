"""The first pull into an empty SQLite mirror is a bulk load: the mirror's secondary indexes
are set aside while its records are written and built once at the end. What is stored is the
same as with the indexes kept; the indexes are back however the pull ends (a failure, a process
killed meanwhile: `open_store` restores them); later pulls are incremental and skip re-read
rows by their hash; PostgreSQL (replicas beside us) never bulk loads."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors import ConnectorError, Cursor, Page, Stream
from mapping import load_mappings
from sync.pull import pull
from sync.state import StateStore, open_store
from sync.state.schema import records

UNTIL = datetime(2026, 1, 1, tzinfo=UTC)
INDEXES = {str(index.name) for index in records.indexes}


def _service(n: int) -> dict[str, str]:
    return {
        "sys_id": f"{n * 7919 % 10007:032x}",  # keys arrive in no order, as sys_ids do
        "sys_updated_on": f"2025-01-01 {n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}",
        "name": f"Service {n}",
        "sys_class_name": "cmdb_ci_service",
    }


class Services:
    """`count` services in pages of 50, each page with its cursor; fails before page
    `fail_at` if given; a later read from a cursor repeats the cursor's own row (the overlap
    the real source re-reads) and brings nothing else."""

    system = "servicenow"

    def __init__(self, count: int, *, fail_at: int | None = None) -> None:
        self.rows = [_service(n) for n in range(count)]
        self.fail_at = fail_at
        self.indexes_seen: list[set[str]] = []  # the mirror's indexes while each page is read
        self.store: StateStore | None = None

    def read(
        self, stream: Stream, *, since: Cursor | None = None, until: datetime | None = None
    ) -> Iterator[Page]:
        if stream is not Stream.SERVICES:
            return
        rows = self.rows
        if since is not None:
            mark = (since.updated, since.id)
            rows = [r for r in rows if (r["sys_updated_on"], r["sys_id"]) >= mark]
        for number, start in enumerate(range(0, len(rows), 50)):
            if number == self.fail_at:
                raise ConnectorError("the instance went away")
            if self.store is not None:
                self.indexes_seen.append(_indexes(self.store))
            page = rows[start : start + 50]
            yield Page(stream, page, Cursor(page[-1]["sys_updated_on"], page[-1]["sys_id"]))


def _indexes(store: StateStore) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(store.engine).get_indexes("records")}


def _mirror(store: StateStore) -> list[tuple[Any, ...]]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.select(*(c for c in records.c if c.name != "seen_at")).order_by(
                records.c.stream, records.c.key
            )
        )
        return [tuple(row) for row in rows]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[StateStore]:
    state = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield state
    state.close()


def test_a_first_pull_stores_what_an_indexed_one_does_and_leaves_every_index(
    sqlite_store: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mappings = load_mappings("servicenow")
    source = Services(400)
    source.store = sqlite_store
    asked: list[int] = []
    known = sqlite_store.known
    monkeypatch.setattr(sqlite_store, "known", lambda s, h: asked.append(len(h)) or known(s, h))
    summary = pull(source, mappings, sqlite_store, until=UNTIL)
    assert asked == [], "no row-hash look-up without its index: every row is mapped"
    assert summary.read["service"] == 400
    assert source.indexes_seen and all(not seen for seen in source.indexes_seen), (
        "the records were written without the secondary indexes"
    )
    assert _indexes(sqlite_store) == INDEXES
    kept = open_store(f"sqlite:///{tmp_path / 'kept.db'}")
    monkeypatch.setattr(kept, "bulk_load_wanted", lambda *, full: False)
    reference = Services(400)
    reference.store = kept
    pull(reference, mappings, kept, until=UNTIL)
    assert reference.indexes_seen[0] == INDEXES
    assert _mirror(sqlite_store) == _mirror(kept)
    kept.close()
    # The next pull is incremental, with the indexes: the re-read row is skipped by its hash.
    source.indexes_seen.clear()
    again = pull(source, mappings, sqlite_store, until=UNTIL)
    assert again.read["service"] == 1 and again.unchanged["service"] == 1
    assert source.indexes_seen == [INDEXES]
    assert asked == [1], "an incremental pull asks by hash"


def test_a_failed_bulk_load_leaves_the_indexes_and_the_next_pull_goes_on(
    sqlite_store: StateStore,
) -> None:
    mappings = load_mappings("servicenow")
    with pytest.raises(ConnectorError):
        pull(Services(400, fail_at=3), mappings, sqlite_store, until=UNTIL)
    assert _indexes(sqlite_store) == INDEXES
    stored = len(_mirror(sqlite_store))
    assert stored == 150, "the three pages read before the failure are stored"
    source = Services(400)
    source.store = sqlite_store
    summary = pull(source, mappings, sqlite_store, until=UNTIL)
    assert all(seen == INDEXES for seen in source.indexes_seen), "not empty: no bulk load"
    assert summary.unchanged["service"] == 1  # the cursor's own row, skipped by its hash
    assert len(_mirror(sqlite_store)) == 400


def test_a_process_killed_during_a_bulk_load_gets_its_indexes_back_on_open(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(url).close()
    script = (
        "import os, sys\n"
        "from sync.state import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "with store.bulk_load() as on:\n"
        "    assert on\n"
        "    os._exit(9)  # killed: no finally runs\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script, url], cwd=root, check=False)
    assert done.returncode == 9
    bare = sa.create_engine(url)
    assert not {str(i["name"]) for i in sa.inspect(bare).get_indexes("records")}
    bare.dispose()
    store = open_store(url)
    assert _indexes(store) == INDEXES
    store.close()


def test_postgresql_never_sets_its_indexes_aside(store: StateStore) -> None:
    """The same store API on both backends: PostgreSQL keeps its indexes (replicas query it)."""
    with store.bulk_load() as on:
        assert on is (store.engine.dialect.name == "sqlite")
        assert bool(_indexes(store)) is not on
    assert _indexes(store) == INDEXES
    if store.engine.dialect.name == "postgresql":
        assert not store.bulk_load_wanted(full=True)


def test_a_store_opened_during_a_bulk_load_leaves_the_indexes_to_the_loader(
    sqlite_store: StateStore, tmp_path: Path
) -> None:
    """A CLI command opening the store while the daemon loads does not build the indexes
    under the load (the loader holds the bulk lock); the loader builds them at its end."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with sqlite_store.bulk_load() as on:
        assert on and not _indexes(sqlite_store)
        other = open_store(url)
        assert not _indexes(other) and other.restore_indexes() is False
        with other.bulk_load() as also:
            assert also is False, "one loader at a time"
        other.close()
    assert _indexes(sqlite_store) == INDEXES


def test_a_failed_final_build_does_not_hide_the_pulls_error_and_the_next_pull_mends_it(
    sqlite_store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    mappings = load_mappings("servicenow")
    build = StateStore._create_missing_indexes

    def full_disk(self: StateStore) -> None:
        raise sa.exc.OperationalError("CREATE INDEX", {}, Exception("database or disk is full"))

    monkeypatch.setattr(StateStore, "_create_missing_indexes", full_disk)
    with pytest.raises(ConnectorError, match="went away"):
        pull(Services(400, fail_at=3), mappings, sqlite_store, until=UNTIL)
    assert not _indexes(sqlite_store)
    monkeypatch.setattr(StateStore, "_create_missing_indexes", build)
    source = Services(400)
    source.store = sqlite_store
    pull(source, mappings, sqlite_store, until=UNTIL)
    assert source.indexes_seen[0] == INDEXES, "built before the next (incremental) pull reads"
    assert len(_mirror(sqlite_store)) == 400
