"""Pull: read each source stream incrementally, map it, and keep it in the state store's mirror.

Each page is mapped and stored together with its cursor in one transaction, so the cursor never
runs ahead of stored data and a crash loses nothing. Records that fail to map are mirrored as
`skipped` entries (gaps in their service's review) until a later version of them maps. Streams
the connector reads whole every time (pages without cursor) are pruned to what was seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from pydantic import BaseModel

from connectors import Cursor, Page, SourceConnector, Stream
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


@dataclass
class PullSummary:
    """Records read, stored and skipped per stream in one pull."""

    read: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    pages: int = 0


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
        seen: set[str] = set()
        snapshot = True
        for page in source.read(stream, since=since, until=until):
            snapshot = snapshot and page.cursor is None
            seen.update(_store(page, mappings, store, source.system, summary))
            summary.pages += 1
            if on_page is not None:
                on_page(stream, len(page.records))
        if snapshot and seen:
            pruned = store.prune(stream.value, seen)
            if pruned:
                log.info("pull.pruned", stream=stream.value, records=pruned)
        log.info(
            "pull.stream_done",
            stream=stream.value,
            read=summary.read[stream.value],
            skipped=summary.skipped[stream.value],
        )
    return summary


def _store(
    page: Page, mappings: SystemMapping, store: StateStore, system: str, summary: PullSummary
) -> set[str]:
    stream = page.stream.value
    result = mappings.map(stream, [dict(r) for r in page.records])
    mirrored = [
        _mirror(stream, record_id, entity)
        for record_id, entity in zip(result.record_ids, result.entities, strict=True)
    ]
    skipped = list(result.skipped) + [
        SkippedRecord(stream=stream, record_id="unknown", reason=error) for error in page.errors
    ]
    mirrored += [
        MirrorRecord(
            stream=SKIPPED,
            key=f"{s.stream}:{s.record_id}",
            body=s.model_dump(mode="json"),
            service_key=s.service_key,
        )
        for s in skipped
    ]
    store.forget(SKIPPED, [f"{stream}:{record_id}" for record_id in result.record_ids])
    cursor = (page.cursor.updated, page.cursor.id) if page.cursor else None
    store.store_page(system, stream, mirrored, cursor)
    summary.read[stream] += len(page.records)
    summary.skipped[stream] += len(skipped)
    return set(result.record_ids)


def _mirror(stream: str, record_id: str, entity: BaseModel) -> MirrorRecord:
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
        )
    return MirrorRecord(
        stream=stream,
        key=record_id,
        body=entity.model_dump(mode="json"),
        service_key=service_key if isinstance(service_key, str) else None,
    )
