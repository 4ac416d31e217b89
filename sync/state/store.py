"""The state store: cursors, the records mirror, the ledger, cycles, runs, the people cache, a
source's kept state (`source_state`, saved by change under a version) and the built packs.

One `StateStore` per process, on SQLite (WAL, the default under the data directory) or
PostgreSQL. `open_store` applies the alembic migrations before anything else touches the
database. Every write method commits its own transaction: the idempotency protocol depends on
an intent being durable *before* the create request leaves.
"""

from __future__ import annotations

import fcntl
import json
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
import structlog
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Connection, Engine

from connectors.crashpoints import crash_point
from sync.state.decided import decided_month, decided_text, moment_text
from sync.state.schema import (
    built_packs,
    cursors,
    cycles,
    leases,
    ledger,
    people,
    records,
    runs,
    source_saves,
    source_state,
    ticket_reads,
    ticket_states,
    ticket_steps,
)

log = structlog.get_logger("slm_sync.state")

SLA_STREAM = "sla_record"
MIGRATION_LOCK = 7_501_001  # PostgreSQL advisory lock id held while migrating


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LedgerRow:
    """What the ledger knows about one ticket key in one target."""

    target: str
    key: str
    parent_key: str | None
    kind: str
    state: str
    ticket_key: str | None
    ticket_id: str | None
    ticket_url: str | None
    spec_hash: str
    applied_hash: str | None
    frozen: bool
    error: str | None
    updated_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def in_doubt_since(self) -> datetime | None:
        """When a create whose outcome is unknown left (None: no create is in doubt)."""
        if self.state in ("sending", "doubt"):
            return self.sent_at or self.updated_at
        return None


@dataclass(frozen=True)
class StepRow:
    """One follow-up step of a ticket (attachment, comment, watcher): pending or done."""

    key: str
    step: str
    state: str
    digest: str


@dataclass(frozen=True)
class MirrorRecord:
    """One mapped source record kept in the mirror."""

    stream: str
    key: str
    body: dict[str, Any]
    service_key: str | None = None
    agreement_key: str | None = None
    month: str | None = None
    breached: bool | None = None
    source_hash: str | None = None  # the raw row's hash (see `StateStore.known`)
    decided: str | None = None  # sla_record: when it counts (sync.state.decided), from body if None
    encoded: str | None = None  # the body as JSON text when the writer has it (stored as is)


@dataclass(frozen=True)
class PageWrite:
    """One page for `StateStore.store_pages`: its mirrored records, the stream's cursor after
    it (None: unchanged) and the mirrored keys it makes obsolete (`forget`: (stream, keys))."""

    stream: str
    mirrored: Sequence[MirrorRecord]
    cursor: tuple[str, str] | None
    forget: tuple[str, Sequence[str]] | None = None


def open_store(url: str, *, migrate_to: str = "head") -> StateStore:
    """Connect to `url`, create the SQLite directory if needed, migrate to the latest schema."""
    lock_path: Path | None = None
    engine = sa.create_engine(url, future=True)
    database = _sqlite_file(engine)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        lock_path = database.with_name(database.name + ".migrate-lock")
    if engine.dialect.name == "sqlite":
        _sqlite_pragmas(engine)
    store = StateStore(engine)
    if lock_path is None:
        store.migrate(migrate_to)  # PostgreSQL: an advisory lock inside migrate()
    else:
        # Two processes opening a new SQLite file together: one migrates, the other waits.
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            store.migrate(migrate_to)
            if migrate_to == "head":
                store.restore_indexes()  # a process killed during a bulk load left them out
    return store


def _sqlite_file(engine: Engine) -> Path | None:
    """The database file of a SQLite engine (None: PostgreSQL, or SQLite in memory)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def _try_lock(path: Path) -> IO[str] | None:
    """`path` opened and exclusively locked (closing it releases the lock), or None when
    another open file holds the lock (another process, or another handle of this one)."""
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _sqlite_pragmas(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        # 8 MB of page cache per connection (default 2 MB): the mirror's indexes take random
        # inserts (sys_ids, row hashes). 32 MB served a cold sync's indexed upserts; a cold
        # sync is a bulk load now (no secondary indexes while it writes), as fast with 8 MB,
        # and every pooled connection filled its own cache: 55 MB of a million-record sync's
        # peak memory.
        cursor.execute("PRAGMA cache_size=-8192")
        cursor.close()


class StateStore:
    """Typed access to the state tables; each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The ledger as read in a cycle (`held_ledger`), per thread: (version, rows) by target.
        self._held = threading.local()
        self._ledger_version = 0  # bumped by every ledger write of this object
        self.ledger_reads = 0  # reads of a whole target's ledger from the database (tests)
        self._bulk_lock = threading.Lock()
        self._bulk_loads = 0  # `bulk_load`s running now
        self._bulk_handle: IO[str] | None = None  # holds the bulk lock while loading
        database = _sqlite_file(engine)
        self._bulk_path = (
            None if database is None else database.with_name(database.name + ".bulk-lock")
        )

    def migrate(self, revision: str = "head") -> None:
        """Apply alembic migrations up to `revision` (idempotent; head by default)."""
        config = AlembicConfig()
        location = resources.files("sync.state").joinpath("migrations")
        config.set_main_option("script_location", str(location))
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas start together: one migrates, the others wait, then find it done.
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": 7_501_001}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    # -- bulk loads ----------------------------------------------------------------------

    def bulk_load_wanted(self, *, full: bool) -> bool:
        """Whether a pull should write its records as a bulk load (`bulk_load`): on SQLite,
        a full re-read, or the first read into an empty mirror (a later read brings changed
        rows and re-read ones, which the row-hash look-up skips cheaply: that needs its index)."""
        if self._bulk_path is None:
            return False  # PostgreSQL: replicas read and write beside us (and it copes)
        if full:
            return True
        with self.engine.connect() as connection:
            held = connection.exec_driver_sql("SELECT 1 FROM records LIMIT 1").first()
        return held is None

    @contextmanager
    def bulk_load(self, enabled: bool = True) -> Iterator[bool]:
        """Write the mirror without its secondary indexes, and build them once at the end.

        A cold sync of a million SLA records on SQLite spent most of its time writing index
        pages: the row hashes, keys and services arrive in random order, so every commit
        dirtied a page of each index per record, and the cost per record grew with the file
        (the 10,000-service run was 1.45x linear). Without them the rows append; building an
        index afterwards is one sort (about 2 s per index per million rows). Meanwhile queries
        on the mirror stay correct, only slower, and `known` must not be asked (the pull maps
        every row instead).

        The loading process holds an exclusive lock on `<database>.bulk-lock` meanwhile, so
        another process opening the store (a CLI command) does not build the indexes under the
        load; a process killed meanwhile loses the lock, and the next `open_store` or pull
        builds them. The indexes come back when the last bulk load of this object ends,
        however it ends (a failure to build them then is logged, not raised over the error
        already on its way). Yields whether the indexes were set aside: never on PostgreSQL
        (replicas query it meanwhile), nor when another process holds the lock. Not `enabled`,
        the indexes a killed load or a failed final build left out are built first."""
        if not enabled or self._bulk_path is None:
            self.restore_indexes()  # what a killed load, or a failed final build, left out
            yield False
            return
        with self._bulk_lock:
            started = self._bulk_loads > 0 or self._begin_bulk_load(self._bulk_path)
            self._bulk_loads += started
        if not started:
            log.warning("state.bulk_load_skipped", reason="another process holds the bulk lock")
            yield False
            return
        try:
            yield True
        except BaseException:
            self._end_bulk_load(quietly=True)
            raise
        self._end_bulk_load(quietly=False)

    def _begin_bulk_load(self, lock_path: Path) -> bool:
        """Take the bulk lock and drop the mirror's secondary indexes (False: another
        process holds the lock)."""
        handle = _try_lock(lock_path)
        if handle is None:
            return False
        try:
            with self.engine.begin() as connection:
                for index in records.indexes:
                    connection.execute(sa.schema.DropIndex(index, if_exists=True))
        except BaseException:
            handle.close()
            raise
        self._bulk_handle = handle
        return True

    def _end_bulk_load(self, *, quietly: bool) -> None:
        with self._bulk_lock:
            self._bulk_loads -= 1
            if self._bulk_loads:
                return
            handle, self._bulk_handle = self._bulk_handle, None
            try:
                self._create_missing_indexes()
            except Exception as error:
                if not quietly:
                    raise
                log.warning("state.indexes_not_built", error=str(error),
                            hint="the next pull or start builds them")  # fmt: skip
            finally:
                if handle is not None:
                    handle.close()  # releases the lock

    def restore_indexes(self) -> bool:
        """Build the mirror's indexes that are missing (a bulk load that was killed, or whose
        final build failed), unless a bulk load holds the lock now; True when none is missing
        afterwards. Cheap when none is missing (one read of the schema)."""
        if self._bulk_path is None or not self._missing_indexes():
            return True
        handle = _try_lock(self._bulk_path)
        if handle is None:
            return False  # being loaded: its loader builds them
        with handle:
            self._create_missing_indexes()
        return True

    def _missing_indexes(self) -> list[sa.Index]:
        with self.engine.connect() as connection:
            present = set(
                connection.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records'"
                ).scalars()
            )
        return [i for i in records.indexes if i.name not in present]

    def _create_missing_indexes(self) -> None:
        """Each in its own transaction, so a writer waiting for the database waits for one
        index at a time; IF NOT EXISTS, so two processes building at once both succeed."""
        for index in sorted(self._missing_indexes(), key=lambda i: str(i.name)):
            with self.engine.begin() as connection:
                connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))

    def schema_version(self) -> str | None:
        """The alembic revision the database is at."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    # -- cursors -------------------------------------------------------------------------

    def cursor(self, system: str, stream: str) -> tuple[str, str] | None:
        """(updated, record_id) where the last committed read of `stream` stopped."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(cursors.c.updated, cursors.c.record_id).where(
                    cursors.c.system == system, cursors.c.stream == stream
                )
            ).first()
        return None if row is None else (row.updated, row.record_id)

    def reset_cursors(self, system: str) -> None:
        """Forget every cursor of `system`: the next run reads everything (full resync)."""
        with self.engine.begin() as connection:
            connection.execute(sa.delete(cursors).where(cursors.c.system == system))

    def store_page(
        self,
        system: str,
        stream: str,
        mirrored: Sequence[MirrorRecord],
        cursor: tuple[str, str] | None,
        *,
        forget: tuple[str, Sequence[str]] | None = None,
    ) -> None:
        """Upsert a page's records and advance the stream's cursor in one transaction.

        The cursor never moves past records that are not stored: both commit together.
        `forget`: (stream, keys) of mirrored records to delete in the same transaction (the
        skipped entries of records that map now).
        """
        self.store_pages(system, [PageWrite(stream, mirrored, cursor, forget)])

    def store_pages(self, system: str, pages: Sequence[PageWrite]) -> None:
        """Several pages (of one stream or several) in one transaction, each as `store_page`
        writes it, in order. One commit per page cost more than the page's rows (every commit
        writes out each index page the rows touched, and the mirror's keys and hashes are
        random): the pull keeps a few pages back and writes them together."""
        if not pages:
            return
        # What the pages leave behind, as writing them one after the other would (a key's
        # last write wins; a key forgotten then mirrored again stays), written in key order:
        # two transactions writing the same keys (this pull and a webhook's announced records,
        # or another replica's pull, on PostgreSQL) lock the rows that exist in one order
        # first (`_lock_in_order`), then insert new ones in that order, and cannot deadlock
        # on them, whatever order their pages came in.
        final: dict[tuple[str, str], MirrorRecord | None] = {}
        cursors_of: dict[str, tuple[str, str]] = {}
        for page in pages:
            if page.forget is not None:
                forgotten, keys = page.forget
                final.update(((forgotten, key), None) for key in keys)
            final.update(((record.stream, record.key), record) for record in page.mirrored)
            if page.cursor is not None:
                cursors_of[page.stream] = page.cursor
        ordered = sorted(final.items(), key=lambda item: item[0])
        gone: dict[str, list[str]] = {}
        for (stream, key), record in ordered:
            if record is None:
                gone.setdefault(stream, []).append(key)
        with self.engine.begin() as connection:
            _lock_in_order(connection, ordered)
            for stream in sorted(gone):
                _delete_keys(connection, stream, gone[stream])
            _upsert_records(connection, [r for _, r in ordered if r is not None])
            for stream in sorted(cursors_of):
                crash_point("mid_cursor_commit")  # inside the transaction: nothing commits
                updated, record_id = cursors_of[stream]
                values = {
                    "system": system,
                    "stream": stream,
                    "updated": updated,
                    "record_id": record_id,
                    "committed_at": _now(),
                }
                _upsert(connection, cursors, values, ("system", "stream"))

    def known(self, streams: Sequence[str], hashes: Sequence[str]) -> dict[str, str]:
        """source_hash -> key of the records of `streams` already mirrored from these raw rows."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(hashes))
        with self.engine.connect() as connection:
            mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                # The driver's own placeholders: SQLAlchemy's expanding IN renders 500 bound
                # names per call, which cost more than the lookup.
                statement = (
                    "SELECT source_hash, key FROM records WHERE stream IN "
                    f"({', '.join([mark] * len(streams))}) AND source_hash IN "
                    f"({', '.join([mark] * len(chunk))})"
                )
                rows = connection.exec_driver_sql(statement, (*streams, *chunk))
                found.update((str(h), str(k)) for h, k in rows)
        return found

    def prune(self, stream: str, keep: set[str], *, prefix: str = "") -> int:
        """Delete records of `stream` (keys starting with `prefix`) not in `keep`; how many."""
        with self.engine.begin() as connection:
            keys = connection.execute(
                sa.select(records.c.key).where(records.c.stream == stream)
            ).scalars()
            gone = [key for key in keys if key.startswith(prefix) and key not in keep]
            for start in range(0, len(gone), 500):
                connection.execute(
                    sa.delete(records).where(
                        records.c.stream == stream, records.c.key.in_(gone[start : start + 500])
                    )
                )
        return len(gone)

    def forget(self, stream: str, keys: Sequence[str]) -> None:
        """Delete these mirrored records of `stream` (e.g. skipped entries that now map)."""
        if not keys:
            return
        with self.engine.begin() as connection:
            _delete_keys(connection, stream, keys)

    def mirrored(
        self, stream: str, *, service_key: str | None = None, agreement_key: str | None = None
    ) -> Iterator[MirrorRecord]:
        """Stream mirrored records of `stream` (optionally of one service or one agreement),
        in key order."""
        query = sa.select(records).where(records.c.stream == stream).order_by(records.c.key)
        if service_key is not None:
            query = query.where(records.c.service_key == service_key)
        if agreement_key is not None:  # by `ix_records_stream_agreement`
            query = query.where(records.c.agreement_key == agreement_key)
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=2000).execute(query)
            for row in result:
                if row.stream == stream:
                    yield _mirror_record(row)

    def sla_tallies(
        self, start: datetime, end: datetime, *, agreement_keys: Collection[str] | None = None
    ) -> list[SlaTally]:
        """SLA records decided in [start, end), counted per agreement and month (one GROUP BY
        over `ix_records_stream_decided`: no record body is read). `agreement_keys`: only these
        agreements' (filtered inside the same index; a webhook's partial build)."""
        breached = sa.func.sum(sa.case((records.c.breached, 1), else_=0))
        query = (
            sa.select(records.c.agreement_key, records.c.month, sa.func.count(), breached)
            .where(*_decided_in(start, end))
            .group_by(records.c.agreement_key, records.c.month)
        )
        found: list[SlaTally] = []
        with self.engine.connect() as connection:
            for chunk in _chunks(agreement_keys):
                chosen = query if chunk is None else query.where(_agreement_in(chunk))
                rows = connection.execute(chosen).all()
                found += [SlaTally(str(a), str(m), int(n), int(b or 0)) for a, m, n, b in rows]
        return found

    def breached_sla(
        self, start: datetime, end: datetime, *, agreement_keys: Collection[str] | None = None
    ) -> Iterator[MirrorRecord]:
        """The breached SLA records decided in [start, end) (their bodies: breach lists), in
        key order. `agreement_keys`: only these agreements' (a webhook's partial build)."""
        query = _breached_in(start, end)
        with self.engine.connect() as connection:
            if agreement_keys is None:
                rows: Iterable[Any] = connection.execution_options(yield_per=2000).execute(query)
            else:  # a few agreements' breaches: read them all, in key order across chunks
                rows = sorted(
                    (
                        row
                        for chunk in _chunks(agreement_keys)
                        for row in connection.execute(query.where(_agreement_in(chunk or ())))
                    ),
                    key=lambda row: str(row.key),
                )
            for row in rows:
                yield MirrorRecord(
                    stream=SLA_STREAM,
                    key=row.key,
                    body=json.loads(row.body),
                    agreement_key=row.agreement_key,
                    breached=True,
                )

    # -- the build's reads (`sync.build`) ---------------------------------------------------
    # A whole build's rows as stored text (digested, decoded only when they changed), and a
    # webhook's partial build's few services' rows, each by an index: the primary key
    # (stream, key), `ix_records_stream_service_key`, or the stream's rows filtered on their
    # body text inside the database (no row decoded that is not returned); `explain` shows
    # their plans.

    def mirrored_texts(self, stream: str) -> Iterator[tuple[str, str]]:
        """(key, body as stored JSON text) of every record of `stream`, in key order: a whole
        build digests the text and decodes it only if it changed (`sync.build`)."""
        query = (
            sa.select(records.c.key, records.c.body)
            .where(records.c.stream == stream)
            .order_by(records.c.key)
        )
        with self.engine.connect() as connection:
            for key, body in connection.execution_options(yield_per=2000).execute(query):
                yield str(key), str(body)

    def breached_sla_texts(self, start: datetime, end: datetime) -> Iterator[tuple[str, str, str]]:
        """(key, agreement key, body text) of the breached SLA records decided in [start, end),
        in key order (`breached_sla`, undecoded)."""
        with self.engine.connect() as connection:
            rows = connection.execution_options(yield_per=2000).execute(_breached_in(start, end))
            for row in rows:
                yield str(row.key), str(row.agreement_key or ""), str(row.body)

    def mirrored_keys(self, stream: str, keys: Collection[str]) -> list[MirrorRecord]:
        """These mirrored records of `stream` (those that exist), in key order."""
        found: list[MirrorRecord] = []
        with self.engine.connect() as connection:
            for chunk in _chunks(sorted(set(keys))):
                query = sa.select(records).where(
                    records.c.stream == stream, records.c.key.in_(chunk or ())
                )
                found += [_mirror_record(row) for row in connection.execute(query)]
        return sorted(found, key=lambda r: r.key)

    def mirrored_of(
        self, stream: str, service_keys: Collection[str], *, unplaced: bool = False
    ) -> list[MirrorRecord]:
        """The mirrored records of `stream` of these services (and, with `unplaced`, those of
        no service), in key order: one indexed read per service."""
        found: list[MirrorRecord] = []
        with self.engine.connect() as connection:
            for service_key in [*sorted(set(service_keys)), *([None] if unplaced else [])]:
                column = records.c.service_key
                query = sa.select(records).where(
                    records.c.stream == stream,
                    column.is_(None) if service_key is None else column == service_key,
                )
                found += [_mirror_record(row) for row in connection.execute(query)]
        return sorted(found, key=lambda r: r.key)

    def mirrored_mentioning(self, stream: str, texts: Collection[str]) -> list[MirrorRecord]:
        """The mirrored records of `stream` whose body contains one of `texts` (a superset:
        the caller checks the decoded body), in key order. The stream's rows are matched inside
        the database (its index on `stream`): only those returned are decoded."""
        found: dict[str, MirrorRecord] = {}
        wanted = sorted(set(texts))
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), 50):
                matches = [
                    records.c.body.contains(t, autoescape=True) for t in wanted[start : start + 50]
                ]
                query = sa.select(records).where(records.c.stream == stream, sa.or_(*matches))
                for row in connection.execute(query):
                    found[row.key] = _mirror_record(row)
        return [found[key] for key in sorted(found)]

    def explain(self, query: str, *, period: tuple[datetime, datetime] | None = None) -> str:
        """The database's plan for one of the store's own queries (`sla_tallies`,
        `breached_sla`, `known`, `mirrored_service`, and those of a partial build:
        `sla_tallies_of`, `breached_sla_of`, `mirrored_keys`, `mirrored_unplaced`,
        `mirrored_mentioning`), as text: tests check the indexes.
        PostgreSQL plans with sequential scans off, so a small table still shows the index a
        query can use (at estate size the planner picks it on its own)."""
        start, end = period or (_now() - timedelta(days=92), _now())
        statements = {
            "sla_tallies": sa.select(records.c.agreement_key, records.c.month, sa.func.count())
            .where(*_decided_in(start, end))
            .group_by(records.c.agreement_key, records.c.month),
            "breached_sla": sa.select(records.c.body).where(
                *_decided_in(start, end), records.c.breached == sa.true()
            ),
            "known": sa.select(records.c.source_hash, records.c.key).where(
                records.c.stream.in_(["sla_record"]), records.c.source_hash.in_(["x", "y"])
            ),
            "mirrored_service": sa.select(records)
            .where(records.c.stream == "material", records.c.service_key == "s")
            .order_by(records.c.key),
            "sla_tallies_of": sa.select(records.c.agreement_key, records.c.month, sa.func.count())
            .where(*_decided_in(start, end), _agreement_in(["a", "b"]))
            .group_by(records.c.agreement_key, records.c.month),
            "breached_sla_of": sa.select(records.c.body).where(
                *_decided_in(start, end), records.c.breached == sa.true(), _agreement_in(["a"])
            ),
            "mirrored_keys": sa.select(records).where(
                records.c.stream == "person", records.c.key.in_(["x", "y"])
            ),
            "mirrored_unplaced": sa.select(records).where(
                records.c.stream == "skipped", records.c.service_key.is_(None)
            ),
            "mirrored_mentioning": sa.select(records).where(
                records.c.stream == "agreement",
                sa.or_(*(records.c.body.contains(t, autoescape=True) for t in ('"c"', '"d"'))),
            ),
        }
        with self.engine.connect() as connection:
            compiled = statements[query].compile(connection, compile_kwargs={"literal_binds": True})
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
                lines = list(connection.execute(sa.text(f"EXPLAIN {compiled}")).scalars())
            else:
                explained = connection.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}"))
                lines = [row[-1] for row in explained]
            return "\n".join(str(line) for line in lines)

    def count(self, stream: str) -> int:
        """How many records of `stream` the mirror holds."""
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    sa.select(sa.func.count())
                    .select_from(records)
                    .where(records.c.stream == stream)
                ).scalar_one()
            )

    # -- ledger --------------------------------------------------------------------------

    @contextmanager
    def held_ledger(self) -> Iterator[None]:
        """Within this block (one cycle, on this thread), `ledger_rows` reads the database once
        and answers from that read until a ledger write of this store object (which reads
        again after it). Only for one cycle: another replica's writes show in the next one, and
        a read that must see them at once (the reconciler's, after its lease) asks `fresh`."""
        outer = getattr(self._held, "rows", None)
        if outer is None:
            self._held.rows = {}
        try:
            yield
        finally:
            if outer is None:
                self._held.rows = None

    def _ledger_changed(self) -> None:
        self._ledger_version += 1

    def ledger_rows(self, target: str, *, fresh: bool = False) -> dict[str, LedgerRow]:
        """Every ledger row of `target`, by key (a new dict: the caller's to change). Within
        `held_ledger` the last read of it, unless `fresh` or written since."""
        held: dict[str, tuple[int, dict[str, LedgerRow]]] | None = getattr(self._held, "rows", None)
        version = self._ledger_version
        if held is not None and not fresh:
            kept = held.get(target)
            if kept is not None and kept[0] == version:
                return dict(kept[1])
        rows = self._read_ledger(target)
        if held is not None:
            held[target] = (version, rows)
        return dict(rows)

    def _read_ledger(self, target: str) -> dict[str, LedgerRow]:
        self.ledger_reads += 1
        # The stamps as the driver gives them (SQLite: text), parsed by `_moment`: SQLAlchemy's
        # own DateTime processing cost more than the rest of the read (called several times a
        # cycle over every ticket's row).
        columns = [
            sa.type_coerce(c, sa.String) if isinstance(c.type, sa.DateTime) else c for c in ledger.c
        ]
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(*columns).where(ledger.c.target == target)).all()
        return {row[1]: _fast_ledger_row(row) for row in rows}

    def record_intent(
        self, target: str, key: str, *, parent_key: str | None, kind: str, spec_hash: str
    ) -> None:
        """Step 1 of the protocol: the intent to create `key` is durable before the request."""
        with self.engine.begin() as connection:
            existing = connection.execute(
                sa.select(ledger.c.state).where(ledger.c.target == target, ledger.c.key == key)
            ).first()
            if existing is not None and existing.state == "created":
                return
            values = {
                "target": target,
                "key": key,
                "parent_key": parent_key,
                "kind": kind,
                "state": "intent",
                "spec_hash": spec_hash,
                "frozen": False,
                "updated_at": _now(),
            }
            _upsert(connection, ledger, values, ("target", "key"))
        self._ledger_changed()

    def record_created(
        self,
        target: str,
        key: str,
        *,
        ticket_key: str,
        ticket_id: str,
        ticket_url: str | None,
        applied_hash: str,
    ) -> None:
        """Step 4: the ticket exists; remember its id and the spec it was made from."""
        self._set(
            target,
            key,
            state="created",
            ticket_key=ticket_key,
            ticket_id=ticket_id,
            ticket_url=ticket_url,
            applied_hash=applied_hash,
            spec_hash=applied_hash,
            error=None,
        )

    def record_applied(self, target: str, key: str, *, applied_hash: str) -> None:
        """An update brought the ticket to the spec with this hash."""
        self._set(target, key, applied_hash=applied_hash, spec_hash=applied_hash, error=None)

    def record_sending(self, target: str, keys: Sequence[str]) -> None:
        """Step 3 begins: the create requests for `keys` are about to leave. From here until a
        ticket or a refusal is recorded, their outcome is unknown (in doubt)."""
        if not keys:
            return
        now = _now()
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(ledger)
                .where(ledger.c.target == target, ledger.c.key.in_(list(keys)))
                .where(ledger.c.state != "created")
                .values(state="sending", sent_at=now, updated_at=now)
            )
        self._ledger_changed()

    def record_doubt(self, target: str, key: str, error: str) -> None:
        """The create for `key` was sent and failed in transit: it may exist. `sent_at` stays."""
        self._set(target, key, state="doubt", error=error[:2000])

    def record_failure(self, target: str, key: str, error: str) -> None:
        """The last attempt for `key` failed and did not create it (refused, or never sent):
        the next run looks it up and creates it."""
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(ledger)
                .where(ledger.c.target == target, ledger.c.key == key)
                .values(
                    updated_at=_now(),
                    error=error[:2000],
                    state=sa.case(
                        (ledger.c.state.in_(("intent", "sending")), "failed"),
                        else_=ledger.c.state,
                    ),
                )
            )
        self._ledger_changed()

    def steps(self, target: str) -> dict[tuple[str, str], StepRow]:
        """Every follow-up step of `target`'s tickets, by (ticket key, step name)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(ticket_steps).where(ticket_steps.c.target == target)
            ).all()
        return {(r.key, r.step): StepRow(r.key, r.step, r.state, r.digest) for r in rows}

    def record_step(self, target: str, key: str, step: str, *, state: str, digest: str) -> None:
        """A step is `pending` (durable before its call) or `done` (after it)."""
        values = {
            "target": target,
            "key": key,
            "step": step,
            "state": state,
            "digest": digest,
            "updated_at": _now(),
        }
        with self.engine.begin() as connection:
            _upsert(connection, ticket_steps, values, ("target", "key", "step"))

    def forget_step(self, target: str, key: str, step: str) -> None:
        """Drop a step that no longer applies (a watcher who left the ticket's people)."""
        with self.engine.begin() as connection:
            connection.execute(
                sa.delete(ticket_steps).where(
                    ticket_steps.c.target == target,
                    ticket_steps.c.key == key,
                    ticket_steps.c.step == step,
                )
            )

    def freeze(self, target: str, key: str) -> None:
        """The review happened: its pack is no longer refreshed."""
        self._set(target, key, frozen=True)

    def forget_ledger(self, target: str) -> None:
        """Drop the ledger of `target` (tests and disaster recovery: lookups by key rebuild it)."""
        with self.engine.begin() as connection:
            connection.execute(sa.delete(ledger).where(ledger.c.target == target))
            connection.execute(sa.delete(ticket_steps).where(ticket_steps.c.target == target))
        self._ledger_changed()

    def _set(self, target: str, key: str, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(ledger)
                .where(ledger.c.target == target, ledger.c.key == key)
                .values(updated_at=_now(), **values)
            )
        self._ledger_changed()

    # -- cycles and runs -----------------------------------------------------------------

    def cycle(self, cycle_id: str) -> tuple[str, list[str] | None] | None:
        """(state, selection) of a cycle, if it was opened."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(cycles).where(cycles.c.id == cycle_id)).first()
        if row is None:
            return None
        return row.state, (json.loads(row.selection) if row.selection else None)

    def save_cycle(self, cycle_id: str, state: str, selection: Iterable[str] | None) -> None:
        """Create or move a cycle to `state` with its selection."""
        values = {
            "id": cycle_id,
            "state": state,
            "selection": json.dumps(sorted(selection)) if selection is not None else None,
            "opened_at": _now(),
            "closed_at": _now() if state == "closed" else None,
        }
        with self.engine.begin() as connection:
            existing = connection.execute(
                sa.select(cycles.c.opened_at).where(cycles.c.id == cycle_id)
            ).first()
            if existing is not None:
                values["opened_at"] = existing.opened_at
            _upsert(connection, cycles, values, ("id",))

    def start_run(self) -> int:
        """A new run row; returns its id."""
        with self.engine.begin() as connection:
            result = connection.execute(sa.insert(runs).values(started_at=_now(), status="running"))
            primary_key = result.inserted_primary_key
            assert primary_key is not None
            return int(primary_key[0])

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        """Close a run with its status and summary."""
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(runs)
                .where(runs.c.id == run_id)
                .values(finished_at=_now(), status=status, summary=json.dumps(summary))
            )

    def last_success(self) -> datetime | None:
        """When the last successful run finished."""
        with self.engine.connect() as connection:
            value = connection.execute(
                sa.select(sa.func.max(runs.c.finished_at)).where(runs.c.status == "ok")
            ).scalar_one()
        if not isinstance(value, datetime):
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    # -- work leases (several replicas) -------------------------------------------------
    # Lease times are the database's clock (PostgreSQL `clock_timestamp()`), so replicas on
    # hosts whose clocks disagree still agree on when a lease runs out.

    def acquire_lease(self, unit: str, holder: str, seconds: float) -> bool:
        """Take `unit` for `seconds` unless another holder's lease is still running.

        PostgreSQL: the lease row is locked with SELECT … FOR UPDATE SKIP LOCKED, so a replica
        never waits on another one that is taking the same unit at this moment. SQLite (one
        process) takes it with one conditional UPDATE.
        """
        with self.engine.begin() as connection:
            now = _lease_clock(connection)
            insert = _insert_for(connection)
            connection.execute(
                insert(leases)
                .values(unit=unit, holder="", expires_at=0.0)
                .on_conflict_do_nothing(index_elements=["unit"])
            )
            if connection.dialect.name == "postgresql":
                row = connection.execute(
                    sa.select(leases.c.holder, leases.c.expires_at)
                    .where(leases.c.unit == unit)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None or (row.holder not in ("", holder) and row.expires_at > now):
                    return False
            taken = connection.execute(
                sa.update(leases)
                .where(
                    leases.c.unit == unit,
                    sa.or_(leases.c.holder.in_(("", holder)), leases.c.expires_at <= now),
                )
                .values(holder=holder, expires_at=now + seconds)
            )
            return taken.rowcount == 1

    def lease(self, unit: str) -> Lease | None:
        """`unit`'s lease as it stands now (None if the unit was never leased)."""
        with self.engine.connect() as connection:
            now = _lease_clock(connection)
            row = connection.execute(
                sa.select(leases.c.holder, leases.c.expires_at).where(leases.c.unit == unit)
            ).first()
        return None if row is None else Lease(unit, row.holder, float(row.expires_at), now)

    def held_leases(self) -> list[Lease]:
        """Every lease not given back, running or run out (a few rows: units being worked on)."""
        with self.engine.connect() as connection:
            now = _lease_clock(connection)
            rows = connection.execute(
                sa.select(leases.c.unit, leases.c.holder, leases.c.expires_at).where(
                    leases.c.holder != ""
                )
            ).all()
        return [Lease(r.unit, r.holder, float(r.expires_at), now) for r in rows]

    def take_over_lease(self, unit: str, old: str, holder: str, seconds: float) -> bool:
        """Take `unit` from `old` (known dead), unless someone else took it meanwhile."""
        with self.engine.begin() as connection:
            taken = connection.execute(
                sa.update(leases)
                .where(leases.c.unit == unit, leases.c.holder == old)
                .values(holder=holder, expires_at=_lease_clock(connection) + seconds)
            )
            return taken.rowcount == 1

    def renew_lease(self, unit: str, holder: str, seconds: float) -> bool:
        """Extend our lease; False if it expired and someone else took the unit."""
        with self.engine.begin() as connection:
            renewed = connection.execute(
                sa.update(leases)
                .where(leases.c.unit == unit, leases.c.holder == holder)
                .values(expires_at=_lease_clock(connection) + seconds)
            )
            return renewed.rowcount == 1

    def release_lease(self, unit: str, holder: str) -> None:
        """Give the unit back at once (the work is done)."""
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(leases)
                .where(leases.c.unit == unit, leases.c.holder == holder)
                .values(holder="", expires_at=0.0)
            )

    # -- people cache --------------------------------------------------------------------

    def people_cache(
        self, system: str, *, retry_unresolved_after: float = 86400.0
    ) -> dict[str, str | None]:
        """email -> account for `system`; misses older than `retry_unresolved_after` s dropped."""
        oldest = _now().timestamp() - retry_unresolved_after
        found: dict[str, str | None] = {}
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(people).where(people.c.system == system)).all()
        for row in rows:
            checked = (
                row.checked_at if row.checked_at.tzinfo else row.checked_at.replace(tzinfo=UTC)
            )
            if row.resolved or checked.timestamp() >= oldest:
                found[row.email] = row.account
        return found

    # -- ticket states -------------------------------------------------------------------

    def stored_tickets(self, target: str) -> StoredTickets:
        """Every ticket state of `target` as last read, the gone keys and the read mark."""
        states: dict[str, dict[str, Any]] = {}
        gone: set[str] = set()
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    ticket_states.c.ticket_key, ticket_states.c.body, ticket_states.c.gone
                ).where(ticket_states.c.target == target)
            ).all()
            mark = connection.execute(
                sa.select(ticket_reads.c.mark, ticket_reads.c.full_at).where(
                    ticket_reads.c.target == target
                )
            ).first()
        for row in rows:
            if row.gone:
                gone.add(row.ticket_key)
            else:
                states[row.ticket_key] = json.loads(row.body)
        read = None
        if mark is not None:
            full_at = mark.full_at if mark.full_at.tzinfo else mark.full_at.replace(tzinfo=UTC)
            read = TicketRead(mark.mark, full_at)
        return StoredTickets(states, gone, read)

    def store_tickets(
        self,
        target: str,
        read: TicketRead,
        changed: dict[str, dict[str, Any]],
        *,
        gone: Iterable[str] = (),
        full: bool = False,
    ) -> None:
        """Record one read in one transaction: the changed states, the keys now gone, and the
        mark the next read starts from. A `full` read replaces every stored state."""
        now = _now()
        rows = [
            {"target": target, "ticket_key": key, "body": json.dumps(body), "gone": False,
             "read_at": now}
            for key, body in changed.items()
        ]  # fmt: skip
        rows += [
            {"target": target, "ticket_key": key, "body": "", "gone": True, "read_at": now}
            for key in gone
            if key not in changed
        ]
        with self.engine.begin() as connection:
            if full:
                connection.execute(sa.delete(ticket_states).where(ticket_states.c.target == target))
            _upsert_many(connection, ticket_states, rows, ("target", "ticket_key"))
            values = {"target": target, "mark": read.mark, "full_at": read.full_at}
            _upsert(connection, ticket_reads, values, ("target",))

    def remember_people(self, system: str, cache: dict[str, str | None]) -> None:
        """Persist a connector's email -> account cache (None: not found)."""
        rows = [
            {
                "system": system,
                "email": email.lower(),
                "account": account,
                "name": None,
                "resolved": account is not None,
                "checked_at": _now(),
            }
            for email, account in cache.items()
        ]
        with self.engine.begin() as connection:
            _upsert_many(connection, people, rows, ("system", "email"))

    # -- what a source keeps between cycles ----------------------------------------------

    def source_state_version(self, system: str) -> int | None:
        """The version of `system`'s kept source state (None: never saved)."""
        with self.engine.connect() as connection:
            version = connection.execute(
                sa.select(source_saves.c.version).where(source_saves.c.system == system)
            ).scalar()
        return None if version is None else int(version)

    def source_state(self, system: str) -> tuple[int | None, dict[str, dict[str, Any]]]:
        """`system`'s kept source state (kind -> key -> body) and its version, read together."""
        state: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as connection:
            version = connection.execute(
                sa.select(source_saves.c.version).where(source_saves.c.system == system)
            ).scalar()
            rows = connection.execute(
                sa.select(source_state.c.kind, source_state.c.key, source_state.c.body).where(
                    source_state.c.system == system
                )
            )
            for kind, key, body in rows:
                state.setdefault(kind, {})[key] = json.loads(body)
        return (None if version is None else int(version)), state

    def save_source_state(
        self,
        system: str,
        changed: dict[str, dict[str, Any]],
        removed: dict[str, list[str]],
        *,
        expected: int | None,
    ) -> int | None:
        """Write the items of `system`'s kept state that changed and delete the removed ones,
        in one transaction, if the kept state is still at version `expected` (else nothing is
        written: another replica saved since; None). The new version."""
        with self.engine.begin() as connection:
            version = connection.execute(
                sa.select(source_saves.c.version)
                .where(source_saves.c.system == system)
                .with_for_update()
            ).scalar()
            if version != expected:
                return None
            for kind, keys in removed.items():
                for start in range(0, len(keys), 500):
                    connection.execute(
                        sa.delete(source_state).where(
                            source_state.c.system == system,
                            source_state.c.kind == kind,
                            source_state.c.key.in_(keys[start : start + 500]),
                        )
                    )
            rows = [
                {"system": system, "kind": kind, "key": key, "body": _json(body)}
                for kind, items in changed.items()
                for key, body in items.items()
            ]
            _upsert_many(connection, source_state, rows, ("system", "kind", "key"))
            crash_point("mid_source_state_save")  # inside the transaction: nothing commits
            new = (version or 0) + 1
            values = {"system": system, "version": new, "saved_at": _now()}
            _upsert(connection, source_saves, values, ("system",))
        return new

    # -- built packs -----------------------------------------------------------------------

    def built_packs(self, cycle: str, code: str) -> list[BuiltPack]:
        """The packs kept for `cycle` by the code of digest `code`."""
        query = sa.select(built_packs).where(
            built_packs.c.cycle == cycle, built_packs.c.code == code
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            BuiltPack(r.service_key, r.cycle, r.fingerprint, r.code, r.pack, bytes(r.chart))
            for r in rows
        ]

    def keep_built_packs(self, packs: Sequence[BuiltPack], *, keep: set[str] | None) -> None:
        """Upsert these packs; with `keep`, delete the packs of services not in it."""
        rows = [
            {
                "service_key": p.service_key,
                "cycle": p.cycle,
                "fingerprint": p.fingerprint,
                "code": p.code,
                "pack": p.pack,
                "chart": p.chart,
            }
            for p in packs
        ]
        with self.engine.begin() as connection:
            _upsert_many(connection, built_packs, rows, ("service_key",))
            if keep is None:
                return
            stored = connection.execute(sa.select(built_packs.c.service_key)).scalars()
            gone = [key for key in stored if key not in keep]
            for start in range(0, len(gone), 500):
                connection.execute(
                    sa.delete(built_packs).where(
                        built_packs.c.service_key.in_(gone[start : start + 500])
                    )
                )


@dataclass(frozen=True)
class BuiltPack:
    """A review's pack (JSON) and chart (PNG) as a cycle built them, with its inputs' digest."""

    service_key: str
    cycle: str
    fingerprint: str
    code: str
    pack: str
    chart: bytes


@dataclass(frozen=True)
class TicketRead:
    """Where the next incremental read of a target's tickets starts, and the last full read."""

    mark: str
    full_at: datetime


@dataclass(frozen=True)
class StoredTickets:
    """A target's tickets as last read: state bodies by ticket key, the keys a full read no
    longer found, and the read mark (None before the first read)."""

    states: dict[str, dict[str, Any]]
    gone: set[str]
    read: TicketRead | None


@dataclass(frozen=True)
class SlaTally:
    """How many SLA records of one agreement were decided in one month, and how many breached."""

    agreement_key: str
    month: str
    measured: int
    breached: int


def _decided_in(start: datetime, end: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        records.c.stream == SLA_STREAM,
        records.c.decided >= moment_text(start),
        records.c.decided < moment_text(end),
    )


def _agreement_in(keys: Sequence[str]) -> sa.ColumnElement[bool]:
    return records.c.agreement_key.in_(list(keys))


def _chunks(keys: Collection[str] | None, size: int = 500) -> Iterator[list[str] | None]:
    """`keys` in sorted chunks of `size` (None: one unrestricted read)."""
    if keys is None:
        yield None
        return
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def _breached_in(start: datetime, end: datetime) -> sa.Select[Any]:
    """The breached SLA records decided in [start, end): key, body, agreement key, key order."""
    return (
        sa.select(records.c.key, records.c.body, records.c.agreement_key)
        .where(*_decided_in(start, end), records.c.breached == sa.true())
        .order_by(records.c.key)
    )


def _mirror_record(row: Any) -> MirrorRecord:
    return MirrorRecord(
        stream=row.stream,
        key=row.key,
        body=json.loads(row.body),
        service_key=row.service_key,
        agreement_key=row.agreement_key,
        month=row.month,
        breached=row.breached,
        source_hash=row.source_hash,
    )


def _lock_in_order(
    connection: Connection, ordered: Sequence[tuple[tuple[str, str], MirrorRecord | None]]
) -> None:
    """On PostgreSQL, lock the existing rows of these (stream, key)s, in that (code point)
    order, before any is deleted or upserted: a delete locks rows in the order its scan meets
    them, and a transaction that deletes a key another upserts (a skipped entry one forgets
    and the other writes again) would otherwise hold one row the other waits for. SQLite
    writes one transaction at a time."""
    if connection.dialect.name != "postgresql":
        return
    for start in range(0, len(ordered), 500):
        chunk = [key for key, _ in ordered[start : start + 500]]
        connection.exec_driver_sql(
            "SELECT 1 FROM records WHERE (stream, key) IN (SELECT * FROM unnest(%s::text[], "
            '%s::text[])) ORDER BY stream COLLATE "C", key COLLATE "C" FOR UPDATE',
            ([stream for stream, _ in chunk], [key for _, key in chunk]),
        )


def _delete_keys(connection: Connection, stream: str, keys: Sequence[str]) -> None:
    """Delete these keys of `stream`, 500 to a statement in the driver's own placeholders (the
    pull asks this for every page it stores: SQLAlchemy's expanding IN, compiled for 500 bound
    names each time, cost more than the delete)."""
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        statement = (
            f"DELETE FROM records WHERE stream = {mark} AND key IN "
            f"({', '.join([mark] * len(chunk))})"
        )
        connection.exec_driver_sql(statement, (stream, *chunk))


RECORD_COLUMNS = (
    "stream", "key", "service_key", "agreement_key", "month", "breached", "body", "seen_at",
    "source_hash", "decided",
)  # fmt: skip


def _upsert_records(connection: Connection, mirrored: Sequence[MirrorRecord]) -> None:
    """Upsert mirrored records with the driver's own executemany: one statement text, one
    tuple per record (SQLAlchemy's per-row parameter processing cost more than the write).
    Rows repeating a key keep the last one, as sequential upserts do."""
    if not mirrored:
        return
    dialect = connection.dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(f'"{c}"' for c in RECORD_COLUMNS)
    changed = ", ".join(f'"{c}" = excluded."{c}"' for c in RECORD_COLUMNS[2:])
    statement = (
        f"INSERT INTO records ({names}) VALUES ({', '.join([mark] * len(RECORD_COLUMNS))}) "
        f'ON CONFLICT ("stream", "key") DO UPDATE SET {changed}'
    )
    moment = records.c.seen_at.type.dialect_impl(dialect).bind_processor(dialect)
    seen_at = _now() if moment is None else moment(_now())
    connection.exec_driver_sql(statement, [_record_row(r, seen_at) for r in mirrored])


def _record_row(record: MirrorRecord, seen_at: Any) -> tuple[Any, ...]:
    sla = record.stream == SLA_STREAM
    return (
        record.stream,
        record.key,
        record.service_key,
        record.agreement_key,
        record.month if record.month is not None or not sla else decided_month(record.body),
        record.breached,
        record.encoded
        if record.encoded is not None
        else json.dumps(record.body, sort_keys=True, default=str),
        seen_at,
        record.source_hash,
        record.decided if record.decided is not None or not sla else decided_text(record.body),
    )


def _ledger_row(row: Any) -> LedgerRow:
    return LedgerRow(
        target=row.target,
        key=row.key,
        parent_key=row.parent_key,
        kind=row.kind,
        state=row.state,
        ticket_key=row.ticket_key,
        ticket_id=row.ticket_id,
        ticket_url=row.ticket_url,
        spec_hash=row.spec_hash,
        applied_hash=row.applied_hash,
        frozen=bool(row.frozen),
        error=row.error,
        updated_at=_aware(row.updated_at),
        sent_at=_aware(row.sent_at),
    )


def _json(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str)


def _fast_ledger_row(row: Sequence[Any]) -> LedgerRow:
    """A ledger row read with its stamps uncoerced (`ledger_rows`), in the table's order."""
    (target, key, parent_key, kind, state, ticket_key, ticket_id, ticket_url, spec_hash,
     applied_hash, frozen, error, updated_at, sent_at) = row  # fmt: skip
    return LedgerRow(
        target, key, parent_key, kind, state, ticket_key, ticket_id, ticket_url, spec_hash,
        applied_hash, bool(frozen), error, _moment(updated_at), _moment(sent_at),
    )  # fmt: skip


def _moment(value: datetime | str | None) -> datetime | None:
    """A stamp as a driver returns it (SQLite: ISO text), as an aware UTC datetime."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for timezone columns; every stamp we write is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _insert_for(connection: Connection) -> Any:
    """The dialect's INSERT with ON CONFLICT support (SQLite and PostgreSQL both have it)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _upsert(
    connection: Connection, table: sa.Table, values: dict[str, Any], keys: tuple[str, ...]
) -> None:
    """INSERT … ON CONFLICT DO UPDATE of one row."""
    _upsert_many(connection, table, [values], keys)


def _upsert_many(
    connection: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: tuple[str, ...]
) -> None:
    """INSERT … ON CONFLICT DO UPDATE of rows with the same columns, as one executemany.

    Written in the dialect's own syntax (SQLite and PostgreSQL both have it). One statement
    with bound parameters, compiled once and cached (a multi-row VALUES clause is compiled anew
    for every batch size, which cost more than the writes themselves); rows repeating a key
    keep the last one, as sequential upserts do.
    """
    if not rows:
        return
    statement = _insert_for(connection)(table)
    changed = {k: statement.excluded[k] for k in rows[0] if k not in keys}
    connection.execute(
        statement.on_conflict_do_update(index_elements=list(keys), set_=changed), rows
    )


@dataclass(frozen=True)
class Lease:
    """One unit's lease: who holds it ("" = given back) until when, read at `now`.

    Both times are the database's clock in seconds since the epoch, so `remaining` means the
    same on every replica.
    """

    unit: str
    holder: str
    expires_at: float
    now: float

    @property
    def remaining(self) -> float:
        """Seconds until the lease runs out (negative: it ran out that long ago)."""
        return self.expires_at - self.now

    @property
    def running(self) -> bool:
        """Held and not yet run out."""
        return self.holder != "" and self.expires_at > self.now


def _lease_clock(connection: Connection) -> float:
    """Now, by the clock every replica shares: the database server's (SQLite: this host's)."""
    if connection.dialect.name == "postgresql":
        return float(
            connection.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
        )
    return time.time()
