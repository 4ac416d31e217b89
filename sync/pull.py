"""Pull: read each source stream incrementally, map it, and keep it in the state store's mirror.

Each page is mapped and stored together with its cursor in one transaction, so the cursor never
runs ahead of stored data and a crash loses nothing. Records that fail to map are mirrored as
`skipped` entries (gaps in their service's review) until a later version of them maps. Streams
the connector reads whole every time (pages without cursor) are pruned to what was seen.

Sources re-read an overlap behind the cursor (rows written late into an already-read second),
so a page may repeat rows: each raw row is hashed, and a row whose hash the mirror already holds
is neither mapped nor stored again (`--full` maps everything). A page that brings nothing new
and does not move the cursor writes nothing.

Read problems a page reports (`ReadError`: table, record, affected services) are logged once
(`pull.read_error`) and mirrored as skipped entries of each affected service, or of no service
(the cycle-wide list) when the source cannot name one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel

from connectors import Cursor, Page, ReadError, SourceConnector, Stream
from mapping import SystemMapping
from review import SkippedRecord, SlaRecord
from sync.state import MirrorRecord, StateStore

log = structlog.get_logger("slm_sync.pull")

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
    """What one stream's read has seen so far: record keys, skipped keys, the cursor."""

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
) -> PullSummary:
    """Bring the mirror up to date with the source, stream by stream."""
    summary = PullSummary()
    for stream in PULL_ORDER:
        if not mappings.has(stream.value):
            continue
        saved = None if full else store.cursor(source.system, stream.value)
        since = Cursor(updated=saved[0], id=saved[1]) if saved else None
        state = _StreamRead(committed=since)
        for page in source.read(stream, since=since, until=until):
            state.snapshot = state.snapshot and page.cursor is None
            state.pages += 1
            _store(page, mappings, store, source.system, summary, state, full=full)
            summary.pages += 1
            if on_page is not None:
                on_page(stream, len(page.records))
        _prune(stream.value, store, state, full=full)
        log.info(
            "pull.stream_done",
            stream=stream.value,
            read=summary.read[stream.value],
            unchanged=summary.unchanged[stream.value],
            skipped=summary.skipped[stream.value],
        )
    return summary


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
    system: str,
    summary: PullSummary,
    state: _StreamRead,
    *,
    full: bool,
) -> None:
    stream = page.stream.value
    rows = [(source_hash(stream, record), dict(record)) for record in page.records]
    problems = [_problem(stream, error) for error in page.errors]
    hashes = [h for h, _ in rows] + [error_hash(stream, p) for p in problems]
    known = {} if full else store.known((stream, SKIPPED), hashes)
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
    store.forget(SKIPPED, [f"{stream}:{record_id}" for record_id in mapped_ids])
    cursor = _later(state.committed, page.cursor)
    if mirrored or cursor != state.committed:
        stored = (cursor.updated, cursor.id) if cursor else None
        store.store_page(system, stream, mirrored, stored)
        state.committed = cursor
    summary.read[stream] += len(page.records)
    summary.unchanged[stream] += len(rows) - len(fresh)


def _map(
    stream: str,
    fresh: Sequence[tuple[str, dict[str, Any]]],
    mappings: SystemMapping,
    state: _StreamRead,
    summary: PullSummary,
) -> tuple[list[MirrorRecord], list[str]]:
    """Map new or changed rows one by one, so each mirror entry keeps its row's hash."""
    mirrored: list[MirrorRecord] = []
    mapped_ids: list[str] = []
    for digest, row in fresh:
        result = mappings.map(stream, [row])
        for record_id, entity in zip(result.record_ids, result.entities, strict=True):
            mirrored.append(_mirror(stream, record_id, entity, digest))
            mapped_ids.append(record_id)
        for skipped in result.skipped:
            mirrored.append(
                _skipped_entry(f"{skipped.stream}:{skipped.record_id}", skipped, digest)
            )
            state.skipped.add(mirrored[-1].key)
            summary.skipped[stream] += 1
    state.seen.update(mapped_ids)
    return mirrored, mapped_ids


def source_hash(stream: str, record: Mapping[str, Any]) -> str:
    """The hash of a raw row as the source sent it (stream included): unchanged rows match."""
    text = json.dumps([stream, record], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


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


def _mirror(stream: str, record_id: str, entity: BaseModel, digest: str) -> MirrorRecord:
    service_key = getattr(entity, "service_key", None)
    if isinstance(entity, SlaRecord):
        moment = entity.stop or entity.start
        return MirrorRecord(
            stream=stream,
            key=record_id,
            body=entity.model_dump(mode="json"),
            service_key=service_key,
            agreement_key=entity.agreement_key,
            month=moment.strftime("%Y-%m"),
            breached=entity.breached,
            source_hash=digest,
        )
    return MirrorRecord(
        stream=stream,
        key=record_id,
        body=entity.model_dump(mode="json"),
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
    _store(page, mappings, store, system, summary, _StreamRead(committed=None), full=False)
    summary.pages += 1
    result = mappings.map(page.stream.value, [dict(row) for row in page.records])
    return {key for e in result.entities if isinstance(key := getattr(e, "service_key", None), str)}
