"""Pull: read each source stream incrementally, map it, and keep it in the state store's mirror.

Each page is mapped and stored together with its cursor in one transaction, so the cursor never
runs ahead of stored data and a crash loses nothing. Mapped pages wait briefly and are written
several to a transaction (`_Writes`: up to `FLUSH_ROWS` records or `FLUSH_SECONDS`; a commit
costs more than a page's rows), always before a stream's end is acted on and when a pull fails
or stops; a page that was not written yet is read again by the next pull.

Records that fail to map are mirrored as `skipped` entries (gaps in their service's review)
until a later version of them maps. Streams the connector reads whole every time (pages without
cursor) are pruned to what was seen.

Sources re-read an overlap behind the cursor (rows written late into an already-read second),
so a page may repeat rows: each raw row is hashed, and a row whose hash the mirror already holds
is neither mapped nor stored again (`--full` maps everything). A page that brings nothing new
and does not move the cursor writes nothing.

The first read into an empty SQLite mirror, and a `--full` one, is a bulk load
(`StateStore.bulk_load`): the mirror's secondary indexes are set aside while the records are
written and built once at the end, and every row is mapped (the row hashes have no index then).

Streams are read ahead of the storing, in background threads (`read_ahead`): a source that
names `independent_streams` (reads that share no state with other streams') has each of them
read in a lane of its own, at the same time as the others, so that more than one request is in
flight while a page is stored; the pages of one stream are stored in their order, those of
different streams as they arrive. The rest are read one after the other in one lane. A pull
that ends early (a failure, a stop) gives up the lanes still reading at their next request
(`connectors.cancel`) and returns only once every lane ended, so the source's kept state is
saved while nothing changes it and the next pull never reads beside an old lane.

Before the first stream, a source that can fetch ahead (`prepare`: ServiceNow sends the first
page of every incremental read in one REST Batch API call) is told every stream and cursor the
pull will read.

A source that keeps state between cycles (the ServiceNow CMDB mirror) gets it from the state
store before the first read (and before `prepare`, whose first pages start from it) and saves
what changed of it after the last (`keeper`, see `sync.source_state`), so a restarted process
goes on incrementally.

Read problems a page reports (`ReadError`: table, record, affected services) are logged once
(`pull.read_error`) and mirrored as skipped entries of each affected service, or of no service
(the cycle-wide list) when the source cannot name one.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import marshal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from queue import Empty, Full, Queue
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel

from connectors import Cursor, Page, ReadError, SourceConnector, Stream, cancel
from mapping import SystemMapping
from mapping.allocation import spaced_collections
from mapping.engine import skipped_record
from review import SkippedRecord, SlaRecord
from sync.source_state import SourceStateKeeper
from sync.state import MirrorRecord, PageWrite, StateStore
from sync.state.decided import decided_moment, moment_text, month_text

log = structlog.get_logger("slm_sync.pull")
T = TypeVar("T")

# People first: services and components refer to them; agreements before the SLA records.
PULL_ORDER = (
    Stream.PEOPLE,
    Stream.SERVICES,
    Stream.COMPONENTS,
    Stream.AGREEMENTS,
    Stream.SLA_RECORDS,
    Stream.CSAT,
    Stream.MATERIALS,
)
SKIPPED = "skipped"
# Mapped pages are written together (one transaction) once this many records wait, or once the
# first has waited this long: see `_Writes`.
FLUSH_ROWS = 5000
FLUSH_SECONDS = 1.0
WAIT_SECONDS = 0.5  # `on_wait` is called this often while no page comes
READER_WAIT_SECONDS = 30.0  # a reader still running after the pull ended is logged this often
READ_ERROR = "read"  # the middle part of a read problem's skipped key: <stream>:read:<table>:...


@dataclass
class PullSummary:
    """Records read, stored, skipped and found unchanged per stream in one pull."""

    read: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    read_errors: list[ReadError] = field(default_factory=list)
    pages: int = 0


@dataclass
class _StreamRead:
    """What one stream's read has seen so far: record keys (of a whole read only, which is
    pruned to them: an incremental read of a million SLA records keeps none in memory), skipped
    keys, the cursor."""

    committed: Cursor | None
    seen: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    pages: int = 0
    snapshot: bool = True


def pull(
    source: SourceConnector,
    mappings: SystemMapping,
    store: StateStore,
    *,
    until: datetime | None,
    full: bool = False,
    on_page: Callable[[Stream, int], None] | None = None,
    keeper: SourceStateKeeper | None = None,
    on_wait: Callable[[], None] | None = None,
) -> PullSummary:
    """Bring the mirror up to date with the source, stream by stream; with a `keeper`, the
    source's own state is loaded from the store first (not with `full`: the source starts
    from nothing) and saved after the last stream, or where a failure or a stop ended the
    pull (the source's state is then as current as the cursors stored).

    `on_page` is called after each page, `on_wait` every `WAIT_SECONDS` while no page comes
    (a cold CMDB walk reads for minutes before its first): either may raise to stop the pull
    (a stop requested), which then gives up the reads still running and waits for them."""
    summary = PullSummary()
    if keeper is not None:
        keeper.load(source, store, cold=full)
    reads = {
        stream: None if full else _cursor(store, source.system, stream)
        for stream in PULL_ORDER
        if mappings.has(stream.value)
    }
    _prepare(source, reads, until)
    streams = [s.value for s in reads]
    # A cold pull (--full, or no stream read before) leaves the objects from before it out of
    # collections; an incremental one reads too little to gain (`mapping.allocation`; in an
    # engine's cycle, the cycle's own scope freezes). A stream with no record yet has no
    # cursor: one such stream does not make the pull cold.
    cold = full or all(cursor is None for cursor in reads.values())
    try:
        with (
            spaced_collections(freeze=cold),
            store.bulk_load(store.bulk_load_wanted(full=full)) as bulk,
        ):
            # in a bulk load the row hashes have no index: every row is mapped, as with --full
            _pull_streams(source, mappings, store, summary, reads, until=until, full=full,
                          remap=full or bulk, on_page=on_page, on_wait=on_wait)  # fmt: skip
    except BaseException:
        if keeper is not None:  # what the source read so far goes with the cursors stored
            keeper.save_after_failure(source, store, streams)
        raise
    if keeper is not None:
        keeper.save(source, store, streams)
    return summary


def _pull_streams(
    source: SourceConnector,
    mappings: SystemMapping,
    store: StateStore,
    summary: PullSummary,
    reads: Mapping[Stream, Cursor | None],
    *,
    until: datetime | None,
    full: bool,
    remap: bool,
    on_page: Callable[[Stream, int], None] | None,
    on_wait: Callable[[], None] | None = None,
) -> None:
    states = {stream: _StreamRead(committed=since) for stream, since in reads.items()}
    lanes = [_lane(source, [(s, reads[s]) for s in lane], until) for lane in _lanes(source, reads)]
    writes = _Writes(store, source.system)
    try:
        for stream, page in read_ahead(lanes, depth=len(lanes), on_wait=on_wait):
            state = states[stream]
            if page is None:  # the stream's last page: every page of it is stored first
                writes.flush()
                _prune(stream.value, store, state, full=full)
                _delivered(source, stream)
                log.info(
                    "pull.stream_done",
                    stream=stream.value,
                    read=summary.read[stream.value],
                    unchanged=summary.unchanged[stream.value],
                    skipped=summary.skipped[stream.value],
                )
                continue
            state.snapshot = state.snapshot and page.cursor is None
            if not state.snapshot:
                state.seen.clear()  # only a whole read is pruned: an incremental one keeps none
            state.pages += 1
            writes.add(_store(page, mappings, store, summary, state, remap=remap))
            summary.pages += 1
            if on_page is not None:
                on_page(stream, len(page.records))
        writes.flush()
    except BaseException:
        writes.flush_after_failure()
        raise


class _Writes:
    """Pages mapped and waiting to be stored, written together (`StateStore.store_pages`)
    once `FLUSH_ROWS` records wait or the first has waited `FLUSH_SECONDS`, before a stream's
    end is acted on (pruning), and when the pull ends or fails: a page's records always go
    with its cursor, so what waits is read again next time if the process dies."""

    def __init__(self, store: StateStore, system: str) -> None:
        self.store = store
        self.system = system
        self.pages: list[PageWrite] = []
        self.rows = 0
        self.since = 0.0

    def add(self, page: PageWrite | None) -> None:
        if page is None:
            return
        if not self.pages:
            self.since = time.monotonic()
        self.pages.append(page)
        self.rows += len(page.mirrored) + 1
        if self.rows >= FLUSH_ROWS or time.monotonic() - self.since >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pages:
            self.store.store_pages(self.system, self.pages)
        self.pages, self.rows = [], 0

    def flush_after_failure(self) -> None:
        """Store what was mapped whole before a failure or a stop (a failing store is
        reported by the exception already on its way)."""
        try:
            self.flush()
        except Exception as error:  # the pull's own exception is the one raised
            log.warning("pull.flush_failed", pages=len(self.pages), error=str(error))


def _lanes(source: SourceConnector, reads: Mapping[Stream, Cursor | None]) -> list[list[Stream]]:
    """The streams to read, grouped into lanes that are read at the same time: each stream a
    source names in `independent_streams` (its read shares no state with any other's) in a lane
    of its own, the others together in pull order in one lane."""
    independent = set(getattr(source, "independent_streams", ()))
    shared = [s for s in reads if s not in independent]
    lanes = [shared] if shared else []
    return lanes + [[stream] for stream in reads if stream in independent]


def _lane(
    source: SourceConnector, streams: Sequence[tuple[Stream, Cursor | None]], until: datetime | None
) -> Iterator[tuple[Stream, Page | None]]:
    """The pages of `streams`, read one stream after the other, each stream's last followed
    by (stream, None)."""
    for stream, since in streams:
        for page in source.read(stream, since=since, until=until):
            yield stream, page
        yield stream, None


def _cursor(store: StateStore, system: str, stream: Stream) -> Cursor | None:
    saved = store.cursor(system, stream.value)
    return Cursor(updated=saved[0], id=saved[1]) if saved else None


def _prepare(
    source: SourceConnector, reads: Mapping[Stream, Cursor | None], until: datetime | None
) -> None:
    """Tell a source that can fetch ahead (ServiceNow: the first pages of every stream in one
    batch call) which streams this pull reads and from which cursors."""
    prepare = getattr(source, "prepare", None)
    if callable(prepare):
        prepare(reads, until=until)


def _delivered(source: SourceConnector, stream: Stream) -> None:
    """Tell a source that remembers what it sent (to send only changes next time) that every
    page of the stream is stored: only then may it forget what it sent."""
    delivered = getattr(source, "delivered", None)
    if callable(delivered):
        delivered(stream)


def _prune(stream: str, store: StateStore, state: _StreamRead, *, full: bool) -> None:
    """After a whole read: drop records and skipped entries of `stream` it did not see."""
    whole = state.pages > 0 and (state.snapshot or full)
    if state.snapshot and state.seen:
        pruned = store.prune(stream, state.seen)
        if pruned:
            log.info("pull.pruned", stream=stream, records=pruned)
    if whole:
        store.prune(SKIPPED, state.skipped, prefix=f"{stream}:")


def _store(
    page: Page,
    mappings: SystemMapping,
    store: StateStore,
    summary: PullSummary,
    state: _StreamRead,
    *,
    remap: bool,
) -> PageWrite | None:
    """Map a page and say what to store of it (None: nothing, its cursor did not move)."""
    stream = page.stream.value
    rows = [(source_hash(stream, record), dict(record)) for record in page.records]
    problems = [_problem(stream, error) for error in page.errors]
    hashes = [h for h, _ in rows] + [error_hash(stream, p) for p in problems]
    known = {} if remap else store.known((stream, SKIPPED), hashes)
    if state.snapshot:
        state.seen.update(known.values())
    state.skipped.update(k for k in known.values() if k.startswith(f"{stream}:"))
    fresh = [(h, row) for h, row in rows if h not in known]
    mirrored, mapped_ids = _map(stream, fresh, mappings, state, summary)
    for problem in problems:
        digest = error_hash(stream, problem)
        entries = _problem_entries(stream, problem, digest)
        state.skipped.update(e.key for e in entries)
        if digest not in known:
            _log_problem(stream, problem)
            mirrored += entries
            summary.read_errors.append(problem)
            summary.skipped[stream] += 1
    cursor = _later(state.committed, page.cursor)
    summary.read[stream] += len(page.records)
    summary.unchanged[stream] += len(rows) - len(fresh)
    if not mirrored and cursor == state.committed:
        return None
    stored = (cursor.updated, cursor.id) if cursor else None
    # skipped entries of records that map now go in the same transaction
    forget = (SKIPPED, [f"{stream}:{record_id}" for record_id in mapped_ids])
    state.committed = cursor  # as far as the pages handed to the store go
    return PageWrite(stream, mirrored, stored, forget)


def _map(
    stream: str,
    fresh: Sequence[tuple[str, dict[str, Any]]],
    mappings: SystemMapping,
    state: _StreamRead,
    summary: PullSummary,
) -> tuple[list[MirrorRecord], list[str]]:
    """Map a page's new or changed rows in one pass, so each mirror entry keeps its row's hash."""
    mirrored: list[MirrorRecord] = []
    mapped_ids: list[str] = []
    outcomes = mappings.outcomes(stream, [row for _, row in fresh]) if fresh else []
    for (digest, _), outcome in zip(fresh, outcomes, strict=True):
        if outcome.entity is not None:
            mirrored.append(_mirror(stream, outcome.record_id, outcome.entity, digest))
            mapped_ids.append(outcome.record_id)
        elif not outcome.excluded:
            skipped = skipped_record(mappings.entity(stream).entity, outcome)
            mirrored.append(
                _skipped_entry(f"{skipped.stream}:{skipped.record_id}", skipped, digest)
            )
            state.skipped.add(mirrored[-1].key)
            summary.skipped[stream] += 1
    if state.snapshot:
        state.seen.update(mapped_ids)
    return mirrored, mapped_ids


def prefetched(pages: Iterable[Page], *, depth: int = 1) -> Iterator[Page]:
    """The pages of `pages`, the next one read by a background thread while the caller stores
    the current one (at most `depth` pages wait). A read error is raised where the page would
    have been; a caller that stops early (an exception, a stop) ends the reader at its next page
    or request, and waits for it to end.
    """
    return read_ahead([pages], depth=depth)


def read_ahead(
    lanes: Sequence[Iterable[T]], *, depth: int = 1, on_wait: Callable[[], None] | None = None
) -> Iterator[T]:
    """The items of every lane, each lane read by a background thread of its own while the
    caller works on the item before: each lane's items in its order, the lanes interleaved as
    their items arrive, at most `depth` items waiting in all (and one more being read per
    lane). A lane's error is raised where its item would have been; a caller that stops early
    (an exception, a stop) ends every reader at its next item or its next request (each
    reader's requests carry the cancel flag, `connectors.cancel`), and waits until all ended.
    `on_wait` is called every `WAIT_SECONDS` while the caller waits for an item; what it
    raises ends the reading as the caller's own exception would.

    With the pull's lanes this keeps requests of several streams in flight at once (up to the
    source's own concurrency cap): one stream's paging is sequential, each page asking for the
    rows after the last one, so one lane alone waits a round trip per page.
    """
    queue: Queue[tuple[str, Any]] = Queue(maxsize=max(1, depth))
    done = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not done.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def read(items: Iterable[T]) -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
        except BaseException as error:  # handed to the caller, raised there
            put(("error", error))
            return
        put(("end", None))

    def reader(number: int, lane: Iterable[T]) -> threading.Thread:
        context = contextvars.copy_context()  # one each: a context runs in one thread at a time
        return threading.Thread(
            target=context.run,
            args=(_cancellable, done, read, lane),
            name=f"pull-read-ahead-{number}",
            daemon=True,
        )

    readers = [reader(number, lane) for number, lane in enumerate(lanes)]

    def items() -> Iterator[T]:
        for reader in readers:
            reader.start()
        try:
            running = len(readers)
            while running:
                try:
                    kind, value = queue.get(timeout=WAIT_SECONDS if on_wait else None)
                except Empty:
                    if on_wait is not None:
                        on_wait()
                    continue
                if kind == "end":
                    running -= 1
                elif kind == "error":
                    raise value
                else:
                    yield value
        finally:
            done.set()  # every reader's cancel flag: each stops at its next request
            _join(readers)

    return items()


def _cancellable(
    flag: threading.Event, read: Callable[[Iterable[T]], None], lane: Iterable[T]
) -> None:
    """A reader's body: its requests stop once `flag` is set (see `connectors.cancel`)."""
    with cancel.cancelled_by(flag):
        read(lane)


def _join(readers: Sequence[threading.Thread]) -> None:
    """Wait for every reader to end, however long its last request takes (each stops at its
    next one): the pull must not return while a reader still reads, or the source's kept state
    would be saved while a reader changes it, and the next pull would read beside it. A
    reader that takes long is logged every `READER_WAIT_SECONDS`."""
    waited = 0.0
    for reader in readers:
        while True:
            reader.join(timeout=READER_WAIT_SECONDS)
            if not reader.is_alive():
                break
            waited += READER_WAIT_SECONDS
            log.warning("pull.reader_still_running", reader=reader.name, seconds=waited)


# A row the marshal format cannot hold is hashed as JSON: keys sorted, compact, anything not
# JSON as str() (one encoder for all: json.dumps builds a new one per call for these options).
_HASH_JSON = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))
# Version 2: from 3 on, a value referenced more than once is written as a back-reference, so
# equal rows gave other bytes as their strings happened to be shared (or not).
_MARSHAL_VERSION = 2


def source_hash(stream: str, record: Mapping[str, Any]) -> str:
    """The hash of a raw row as the source sent it (stream included): unchanged rows match.

    The row's fields in key order, in Python's marshal format (a C serialiser of plain values:
    a quarter of the sorted JSON it replaced, which was a tenth of a cold pull's CPU). Nested
    objects keep the order the source sent; a Python whose marshal format differs, or the
    JSON hash of an earlier version, makes every row look changed once: it is mapped and stored
    again, as by `--full`, and nothing it builds differs."""
    try:
        data = marshal.dumps((stream, sorted(record.items())), _MARSHAL_VERSION)
    except ValueError:  # not plain values (a plugin's own objects)
        data = _HASH_JSON.encode([stream, record]).encode()
    return hashlib.sha256(data).hexdigest()


def error_hash(stream: str, error: ReadError) -> str:
    """The hash of a read problem: the same problem reported again is not logged again."""
    parts = [READ_ERROR, stream, error.table, error.record_id, error.reason, *error.service_ids]
    return source_hash(stream, {"problem": parts})


def _problem(stream: str, error: ReadError | str) -> ReadError:
    """A plugin's plain-text error as a ReadError of the stream, record unknown."""
    return error if isinstance(error, ReadError) else ReadError(stream, "unknown", error)


def _problem_entries(stream: str, problem: ReadError, digest: str) -> list[MirrorRecord]:
    """One skipped entry per affected service (one without service if none is named)."""
    base = f"{stream}:{READ_ERROR}:{problem.table}:{problem.record_id}"
    services: Iterable[str | None] = problem.service_ids or (None,)
    entries = []
    for service in services:
        skipped = SkippedRecord(
            stream=stream,
            record_id=problem.record_id,
            reason=f"not read from {problem.table}: {problem.reason}",
            service_key=service,
        )
        entries.append(_skipped_entry(f"{base}@{service}" if service else base, skipped, digest))
    return entries


def _log_problem(stream: str, problem: ReadError) -> None:
    log.warning(
        "pull.read_error",
        stream=stream,
        table=problem.table,
        record_id=problem.record_id,
        reason=problem.reason,
        services=list(problem.service_ids),
    )


def _skipped_entry(key: str, skipped: SkippedRecord, digest: str) -> MirrorRecord:
    return MirrorRecord(
        stream=SKIPPED,
        key=key,
        body=skipped.model_dump(mode="json"),
        service_key=skipped.service_key,
        source_hash=digest,
    )


def _later(committed: Cursor | None, cursor: Cursor | None) -> Cursor | None:
    """The page's cursor, never behind the committed one (overlap pages repeat older rows)."""
    if committed is None or cursor is None:
        return cursor or committed
    return max(committed, cursor)


def _mirror(stream: str, record_id: str, entity: BaseModel, digest: str | None) -> MirrorRecord:
    """The mirror entry of a mapped entity; its body goes to the store as pydantic's own JSON
    (`encoded`, no intermediate dict), so `body` is left empty."""
    service_key = getattr(entity, "service_key", None)
    encoded = entity.__pydantic_serializer__.to_json(entity).decode()
    if isinstance(entity, SlaRecord):
        moment = entity.stop or entity.start
        decided = decided_moment(entity.start, entity.stop, entity.breached)
        return MirrorRecord(
            stream=stream,
            key=record_id,
            body={},
            encoded=encoded,
            service_key=service_key,
            agreement_key=entity.agreement_key,
            month=month_text(moment),
            breached=entity.breached,
            source_hash=digest,
            decided=None if decided is None else moment_text(decided),
        )
    return MirrorRecord(
        stream=stream,
        key=record_id,
        body={},
        encoded=encoded,
        service_key=service_key if isinstance(service_key, str) else None,
        source_hash=digest,
    )


def store_announced(
    page: Page, mappings: SystemMapping, store: StateStore, system: str, summary: PullSummary
) -> set[str]:
    """Mirror one page of records a webhook named (read by sys_id, no cursor): the stream's
    cursor does not move, and the next poll reads them again, finding them stored unchanged.
    Returns the services the page's records belong to."""
    if page.cursor is not None:
        raise ValueError("an announced page carries no cursor")
    write = _store(page, mappings, store, summary, _StreamRead(committed=None), remap=False)
    if write is not None:
        store.store_pages(system, [write])
    summary.pages += 1
    result = mappings.map(page.stream.value, [dict(row) for row in page.records])
    return {key for e in result.entities if isinstance(key := getattr(e, "service_key", None), str)}
