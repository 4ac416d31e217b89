"""ServiceNow as a source: raw records of every stream, page by page, with commit-able cursors.

Plain table streams (service, relation, sla_record) are keyset reads. The others add derived
`slm_` fields (see the shapes in the module docs of `connectors.servicenow`):

- agreement: keyset reads of `contract_sla` plus the target and subject Service Portfolio
  Management gives (`slm_target_percentage`, `slm_target_source`, `slm_applies_to`,
  `slm_commitment_type`; see `connectors.servicenow.commitments`);

- component: the CIs a "Depends on::Used by" walk reaches from the services, with
  `slm_service_ids` and `slm_depends_on`; always read whole (a relation change anywhere can
  change it), so its pages carry no cursor;
- person: the `sys_user` records the services and components name (owner, manager, and custom
  `u_` people fields configured in `servicenow.fields`), fetched in `sys_idIN` batches and
  cached; no cursor either;
- csat_response: `asmt_metric_result` rows plus `slm_service_id`, the service of the task the
  answer is about (looked up per page in one batch per source table);
- material: `kb_knowledge` and `problem` rows merged in keyset order (so one cursor covers
  both) plus `slm_kind` and `slm_service_id`.

Cursors: a page's cursor covers it and every page before; the caller commits it after
processing. `until` (default: now minus `clock_skew_seconds`) bounds the run, so a row written
while we read comes back next run instead of being skipped behind the cursor. Incremental reads
start `overlap_seconds` behind the cursor, so rows written late into an already-read second
are read too (see `paging`); the sync layer drops the re-read rows it stores unchanged.

What a restarted process needs to go on incrementally (the CMDB mirror, the people rows, the
relation type's sys_id, when people were last refreshed) is offered to the sync layer as
`kept_state` and taken back with `restore_state`, under a digest of the settings it depends on
(another instance, table, field list or relation type: a cold start instead).

Read problems travel on the pages as `ReadError`s naming the table and record (for a CI the
walk cannot read: each relation naming it) and the services they affect.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice

from config import ServiceNowSettings, Settings
from connectors.base import Cursor, Page, ReadError, SourceState, Stream
from connectors.servicenow import query
from connectors.servicenow.batch import BatchReader, ListRequest
from connectors.servicenow.client import Record, TableClient
from connectors.servicenow.cmdb import CmdbMirror
from connectors.servicenow.commitments import Commitment, CommitmentReader
from connectors.servicenow.guard import Guard
from connectors.servicenow.links import source_url
from connectors.servicenow.lookup import BatchLookup
from connectors.servicenow.paging import KeysetPager, TablePage, later, read_rows, settled
from connectors.servicenow.streams import (
    MATERIAL_LINKS,
    MATERIAL_SERVICE_FIELDS,
    SERVICE_CLASSES,
    StreamSpec,
    fields_for,
    material_spec,
    person_references,
    spec_for,
)
from connectors.servicenow.walk import Reached, relation_type_id
from connectors.servicenow.wiring import build_client, build_guard
from review import SourceRef

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Streams `read_records` reads records of by sys_id (plain table reads whose rows map alone).
ONE_RECORD_STREAMS = (Stream.SERVICES, Stream.SLA_RECORDS)
# The tasks (incidents) behind CSAT answers kept looked up, per table: those of the last answers
# read, so the overlap a read repeats behind its cursor (at most a page: `page_size` <= 10,000)
# asks for none again; not every task ever answered about (`BatchLookup.kept`).
TASKS_KEPT = 10_000


class ServiceNowSource:
    """`connectors.SourceConnector` for a ServiceNow instance."""

    system = "servicenow"
    # Streams whose reads share no state with any other stream's: the pull reads each in a
    # thread of its own beside the others (people, services and components share the CMDB
    # walk and are read one after the other). The guard's concurrency caps the calls in flight.
    independent_streams = (Stream.AGREEMENTS, Stream.SLA_RECORDS, Stream.CSAT, Stream.MATERIALS)

    def __init__(
        self,
        client: TableClient,
        settings: ServiceNowSettings,
        guard: Guard,
        now: Callable[[], datetime] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.settings = settings
        self.guard = guard
        self._now = now or (lambda: datetime.now(UTC))
        self._clock = clock
        self.cmdb = self._new_cmdb()
        self._emitted: dict[Stream, _Emitted] = {}
        self._people_rows: dict[str, Record] = {}
        self._people_cursor: Cursor | None = None
        self._people_read_at: float | None = None
        batch = settings.lookup_batch_size
        self.people = BatchLookup(
            client, guard, settings.tables.people, fields_for(settings, Stream.PEOPLE), batch
        )
        self._task_services: dict[str, BatchLookup] = {}
        self._type_id: str | None = None
        self.commitments = CommitmentReader(client, guard, settings)
        self.batch = BatchReader(enabled=settings.batch_reads)

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceNowSource:
        """A source for `settings.servicenow`, with the shared HTTP, retry and pacing rules."""
        return cls(build_client(settings), settings.servicenow, build_guard(settings))

    # --- the SourceConnector surface ----------------------------------------------------------

    def read(
        self, stream: Stream, *, since: Cursor | None = None, until: datetime | None = None
    ) -> Iterator[Page]:
        """Pages of `stream` updated after `since` (all if None) and not after `until`."""
        bound = self._bound(until)
        if stream is Stream.COMPONENTS:
            yield from self._components(bound)
        elif stream is Stream.PEOPLE:
            yield from self._people(bound)
        elif stream is Stream.CSAT:
            yield from self._csat(since, bound)
        elif stream is Stream.MATERIALS:
            yield from self._materials(since, bound)
        elif stream is Stream.AGREEMENTS:
            yield from self._agreements(since, bound)
        else:
            for page in self._pager(spec_for(self.settings, stream), since, bound).pages():
                if stream is Stream.SERVICES:
                    self.cmdb.observe_services(page.records)
                yield _page(stream, page)

    def prepare(self, reads: Mapping[Stream, Cursor | None], *, until: datetime | None) -> None:
        """The pull is about to read `reads` (stream -> its cursor) up to `until`: fetch the
        first page of every incremental read in one batch call (see `batch`). Cold reads (no
        cursor, a CMDB walk due) are left to their own calls: their first pages are full."""
        bound = self._bound(until)
        asked: list[ListRequest] = []
        for stream, since in reads.items():
            asked += self._first_reads(stream, since, bound)
        self.batch.prefetch(self.client, self.guard, list(dict.fromkeys(asked)))

    def _first_reads(self, stream: Stream, since: Cursor | None, bound: str) -> list[ListRequest]:
        if stream in (Stream.PEOPLE, Stream.COMPONENTS):
            reads = self.cmdb.first_reads(self._type_id, bound) if self._type_id else []
            if stream is Stream.PEOPLE and self._people_refresh_due():
                spec = spec_for(self.settings, Stream.PEOPLE)
                reads.append(self._pager(spec, self._people_cursor, bound).first_request())
            return reads
        if since is None:
            return []
        if stream is Stream.MATERIALS:
            return [
                self._pager(spec, since, bound, MATERIAL_LINKS[kind]).first_request()
                for kind, spec in self._material_specs().items()
            ]
        return [self._pager(spec_for(self.settings, stream), since, bound).first_request()]

    def read_records(self, stream: Stream, sys_ids: Sequence[str]) -> Iterator[Page]:
        """Records of a plain table stream (service, sla_record) named by sys_id: one call per
        `lookup_batch_size` of them (`sys_idIN`), a page each; for services, then a `person`
        page of the people they name (as the people stream reads them, from its cache).

        The same table, fields (dot-walks included) and admin filter as the stream's read, so
        the mapping makes the same entities of them; a record that does not exist, that ACLs
        hide or that the filter leaves out is not in the page. The pages carry no cursor: a
        webhook's read never moves the stream's (the next poll reads the records again).
        """
        if stream not in ONE_RECORD_STREAMS:
            raise ValueError(f"{stream.value} records cannot be read by sys_id")
        spec = spec_for(self.settings, stream)
        wanted = list(dict.fromkeys(sys_ids))
        size = self.settings.lookup_batch_size
        named: dict[str, None] = {}
        for start in range(0, len(wanted), size):
            page = Page(stream, *self._by_sys_id(spec, wanted[start : start + size]))
            for row in page.records if stream is Stream.SERVICES else ():
                named.update((row.get(f) or "", None) for f in person_references(self.settings))
            yield page
        if named:  # the people a changed service names (new owner): cached, else one call
            people = list(self.people.fetch(named).values())
            yield Page(Stream.PEOPLE, people, None, ())

    def _by_sys_id(
        self, spec: StreamSpec, batch: Sequence[str]
    ) -> tuple[list[Record], None, tuple[ReadError, ...]]:
        condition = query.conjoin([spec.filter, query.sys_ids_in("sys_id", batch)])
        result = self.guard.call(
            lambda: self.client.list(
                spec.table, query=condition, fields=spec.fields, limit=len(batch)
            ),
            what=f"table {spec.table}",
        )
        page = read_rows(spec.table, list(result.records), None)
        return page.records, None, tuple(page.errors)

    def record_url(self, ref: SourceRef) -> str | None:
        """Where people open a record read from here (`servicenow.public_url` behind a proxy)."""
        return source_url(self.settings.record_base_url(), ref)

    def delivered(self, stream: Stream) -> None:
        """The pull stored every page of `stream`'s last read (see `_Emitted`)."""
        emitted = self._emitted.get(stream)
        if emitted is not None:
            emitted.delivered()

    def full_resync(self) -> None:
        """Forget cached lookups; the caller then reads with `since=None`."""
        self.people.forget()
        for lookup in self._task_services.values():
            lookup.forget()
        self._type_id = None
        self.commitments.forget()
        self.cmdb = self._new_cmdb()
        self._emitted.clear()
        self._people_rows.clear()
        self._people_cursor = self._people_read_at = None

    def kept_state(self) -> SourceState:
        """What a restarted process needs to go on incrementally (see the module docs)."""
        cmdb = self.cmdb.state()
        if not cmdb:
            return {}
        people = self._people_cursor
        meta = {
            "settings": self._settings_digest(),
            "type_id": self._type_id,
            "people_cursor": None if people is None else [people.updated, people.id],
            "people_read_at": self._people_read_at,
        }
        cmdb["meta"]["source"] = meta
        return {**cmdb, "person": dict(self._people_rows)}

    def restore_state(self, state: SourceState) -> bool:
        """Go on from a kept state; False (nothing taken) if it was kept under other settings."""
        meta = state.get("meta", {}).get("source")
        if not isinstance(meta, dict) or meta.get("settings") != self._settings_digest():
            return False
        self.full_resync()
        if not self.cmdb.restore(state):
            return False
        self._type_id = meta["type_id"]
        people = meta["people_cursor"]
        self._people_cursor = None if people is None else Cursor(people[0], people[1])
        self._people_read_at = meta["people_read_at"]
        self._people_rows = dict(state.get("person", {}))
        self.people.preload(self._people_rows)
        return True

    def forget_state(self) -> None:
        """Start cold: the next read walks the CMDB from scratch."""
        self.full_resync()

    def _settings_digest(self) -> str:
        """The settings the kept state depends on (instance, tables, fields, relation type)."""
        settings = self.settings
        specs = [spec_for(settings, s) for s in (Stream.SERVICES, Stream.COMPONENTS, Stream.PEOPLE)]
        parts = [
            settings.base_url(),
            settings.relation_type,
            settings.relation_depth,
            settings.tables.model_dump(mode="json"),
            [[spec.table, list(spec.fields), spec.filter] for spec in specs],
            person_references(settings),
        ]
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    # --- streams --------------------------------------------------------------------------------

    def _bound(self, until: datetime | None) -> str:
        moment = until or self._now() - timedelta(seconds=self.settings.clock_skew_seconds)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return moment.strftime(TIME_FORMAT)

    def _pager(
        self, spec: StreamSpec, since: Cursor | None, until: str | None, extra: str = ""
    ) -> KeysetPager:
        overlap = self.settings.overlap_seconds
        return KeysetPager(
            self.client, self.guard, spec, self.settings.page_size, since, until, extra, overlap
        )

    def _all_rows(self, stream: Stream) -> list[Record]:
        spec = spec_for(self.settings, stream)
        return [r for page in self._pager(spec, None, None).pages() for r in page.records]

    def _new_cmdb(self) -> CmdbMirror:
        settings = self.settings
        return CmdbMirror(
            self.client,
            self.guard,
            settings.tables.relations,
            spec_for(settings, Stream.COMPONENTS),
            settings.relation_depth,
            settings.lookup_batch_size,
            settings.page_size,
            settings.overlap_seconds,
            settings.cmdb_rewalk_seconds,
            _service_classes(settings),
            clock=self._clock,
        )

    def _current_cmdb(self, bound: str) -> dict[str, Reached]:
        """The CMDB as of `bound`: walked cold when due, else refreshed once per cycle."""
        if self.cmdb.due():
            self._emitted.clear()  # a fresh walk is a whole snapshot: the mirror is pruned
            self.cmdb.rebuild(self._all_rows(Stream.SERVICES), self._relation_type(), bound)
        else:
            self.cmdb.refresh(self._relation_type(), bound)
        return self.cmdb.expand(self._relation_type())

    def _components(self, bound: str) -> Iterator[Page]:
        rows, missing = self._reached_components(self._current_cmdb(bound))
        self.cmdb.cycle_done()  # people (read first) share this cycle's refresh; no later one
        errors = [*self.cmdb.errors, *missing]
        emitted = self._emitted.setdefault(Stream.COMPONENTS, _Emitted())
        yield from emitted.pages(Stream.COMPONENTS, rows, errors, self.settings.page_size, bound)

    def _reached_components(
        self, reached: Mapping[str, Reached]
    ) -> tuple[dict[str, Record], list[ReadError]]:
        """The reached CIs with their slm_ fields; relations to CIs that cannot be read."""
        cis = self.cmdb.cis
        table = self.cmdb.components.table
        rows = {
            ci: {
                **cis[ci],
                "slm_service_ids": list(node.services),
                "slm_depends_on": list(node.depends_on),
            }
            for ci, node in reached.items()
            if ci in cis
        }
        missing = [
            ReadError(
                self.settings.tables.relations,
                relation,
                f"relation to {table} record {ci}, which does not exist or ACLs hide "
                "from the integration user; fix or remove the relation, or grant cmdb_read",
                tuple(node.services),
            )
            for ci, node in reached.items()
            if ci not in cis
            for relation in node.relations
        ]
        return rows, missing

    def _relation_type(self) -> str:
        if self._type_id is None:
            self._type_id = relation_type_id(self.client, self.guard, self.settings.relation_type)
        return self._type_id

    def _people(self, bound: str) -> Iterator[Page]:
        """The people services and components name: new ones looked up by `sys_idIN` at
        once, known ones refreshed from `sys_user` rows changed since the last refresh (every
        `servicenow.people_refresh_seconds`)."""
        reached = self._current_cmdb(bound)
        components, _ = self._reached_components(reached)
        named: dict[str, None] = {}
        for row in [*self.cmdb.services.values(), *components.values()]:
            named.update((row.get(f) or "", None) for f in person_references(self.settings))
        named.pop("", None)
        self._refresh_people(bound)
        unknown = [p for p in named if p not in self._people_rows]
        self._people_rows.update(self.people.fetch(unknown))
        rows = {p: self._people_rows[p] for p in named if p in self._people_rows}
        emitted = self._emitted.setdefault(Stream.PEOPLE, _Emitted())
        yield from emitted.pages(Stream.PEOPLE, rows, [], self.settings.page_size, bound)

    def _refresh_people(self, bound: str) -> None:
        """Known people's `sys_user` rows changed since the last refresh, when one is due."""
        now = self._clock()
        if self._people_read_at is None:  # first read: what we fetch now is current
            self._people_read_at, self._people_cursor = now, Cursor(bound)
            return
        if not self._people_refresh_due():
            return
        self._people_read_at = now
        spec = spec_for(self.settings, Stream.PEOPLE)
        for page in self._pager(spec, self._people_cursor, bound).pages():
            for row in page.records:
                if row["sys_id"] in self._people_rows:
                    self._people_rows[row["sys_id"]] = row
            self._people_cursor = page.cursor

    def _people_refresh_due(self) -> bool:
        """Whether known people's changed rows are to be read this cycle."""
        if self._people_read_at is None:
            return False
        return self._clock() - self._people_read_at >= self.settings.people_refresh_seconds

    def _agreements(self, since: Cursor | None, until: str) -> Iterator[Page]:
        """contract_sla rows plus their SPM target and subject (see `commitments`)."""
        spec = spec_for(self.settings, Stream.AGREEMENTS)
        # A whole read that fills its first page reads SPM whole (a few pages), for this read
        # alone, rather than look up each page's commitments (two calls per
        # `lookup_batch_size` agreements).
        whole: dict[str, Commitment] | None = None
        tried = False
        for page in self._pager(spec, since, until).pages():
            if not tried and since is None and len(page.records) >= self.settings.page_size:
                tried = True
                whole = self.commitments.read_whole()
            records = self.commitments.enrich(page.records, whole=whole)
            yield Page(Stream.AGREEMENTS, records, page.cursor, tuple(page.errors))

    def _csat(self, since: Cursor | None, until: str) -> Iterator[Page]:
        spec = spec_for(self.settings, Stream.CSAT)
        for page in self._pager(spec, since, until).pages():
            services = self._services_of_tasks(page.records)
            records = [
                {**row, "slm_service_id": services.get(row.get("source_id") or "", "")}
                for row in page.records
            ]
            yield Page(Stream.CSAT, records, page.cursor, tuple(page.errors))

    def _services_of_tasks(self, rows: Sequence[Record]) -> dict[str, str]:
        """source_id -> the task's business_service, one lookup batch per source table."""
        by_table: dict[str, list[str]] = {}
        for row in rows:
            table = row.get("source_table") or ""
            if table and (row.get("source_id") or ""):
                by_table.setdefault(table, []).append(row["source_id"])
        services: dict[str, str] = {}
        for table, ids in by_table.items():
            lookup = self._task_services.get(table)
            if lookup is None:
                fields = ("sys_id", "business_service", "cmdb_ci")
                lookup = BatchLookup(
                    self.client,
                    self.guard,
                    table,
                    fields,
                    self.settings.lookup_batch_size,
                    kept=TASKS_KEPT,
                )
                self._task_services[table] = lookup
            for sys_id, task in lookup.fetch(ids).items():
                services[sys_id] = task.get("business_service") or ""
        return services

    def _material_specs(self) -> dict[str, StreamSpec]:
        tables = {
            "knowledge": self.settings.tables.knowledge,
            "problem": self.settings.tables.problems,
        }
        return {kind: material_spec(self.settings, kind, table) for kind, table in tables.items()}

    def _materials(self, since: Cursor | None, until: str) -> Iterator[Page]:
        sources = [
            self._material_rows(kind, spec, since, until, MATERIAL_LINKS[kind])
            for kind, spec in self._material_specs().items()
        ]
        merged = heapq.merge(
            *sources, key=lambda item: (item[0]["sys_updated_on"], item[0]["sys_id"])
        )
        cursor = since
        while batch := list(islice(merged, self.settings.page_size)):
            records = [row for row, _ in batch]
            errors = tuple(e for _, errs in batch for e in errs)
            last = records[-1]
            cursor = later(since, Cursor(last["sys_updated_on"], last["sys_id"]))
            yield Page(Stream.MATERIALS, records, cursor, errors)
        end = settled(cursor, until, self.settings.overlap_seconds)
        if end is not None:  # both tables read to their end (see `paging.settled`)
            yield Page(Stream.MATERIALS, [], end)

    def _material_rows(
        self, kind: str, spec: StreamSpec, since: Cursor | None, until: str, extra: str
    ) -> Iterator[tuple[Record, tuple[ReadError, ...]]]:
        links = MATERIAL_SERVICE_FIELDS[kind]
        for page in self._pager(spec, since, until, extra).pages():
            errors = tuple(page.errors)
            for index, row in enumerate(page.records):  # the end page has none
                service = next((row.get(f) for f in links if row.get(f)), "")
                record = {**row, "slm_kind": kind, "slm_service_id": service}
                yield record, errors if index == 0 else ()


class _Emitted:
    """What a whole-read stream (components, people) delivered last: the next read sends only
    rows that changed, with a cursor; when a row or a problem went away it sends everything
    again without cursor, so the sync layer prunes what was not seen. What was delivered is
    remembered only once the caller says it stored every page (`ServiceNowSource.delivered`):
    a pull that failed midway gets the same rows again next time (taking the last page is not
    enough: the pull reads a page ahead while it stores the one before)."""

    def __init__(self) -> None:
        self.rows: dict[str, Record] | None = None
        self.errors: set[ReadError] = set()
        self.pending: tuple[dict[str, Record], set[ReadError]] | None = None

    def delivered(self) -> None:
        """The last read's pages are stored: the next read sends only what changes after it."""
        if self.pending is not None:
            self.rows, self.errors = self.pending
            self.pending = None

    def pages(
        self,
        stream: Stream,
        rows: dict[str, Record],
        errors: Sequence[ReadError],
        size: int,
        bound: str,
    ) -> Iterator[Page]:
        self.pending = None  # a read whose pages were not all stored is forgotten
        previous, seen, now_seen = self.rows, self.errors, set(errors)
        if previous is None or any(k not in rows for k in previous) or seen - now_seen:
            yield from _chunks(stream, list(rows.values()), size, errors)
        else:
            changed = [row for key, row in rows.items() if previous.get(key) != row]
            fresh = tuple(e for e in errors if e not in seen)
            cursor = Cursor(bound)
            for start in range(0, len(changed), size):
                yield Page(stream, changed[start : start + size], cursor, () if start else fresh)
            if not changed and fresh:
                yield Page(stream, [], cursor, fresh)
        self.pending = rows, now_seen


def _service_classes(settings: ServiceNowSettings) -> tuple[str, ...]:
    """The classes a deleted service can have (`sys_audit_delete.tablename`)."""
    table = settings.tables.services
    return SERVICE_CLASSES if table == "cmdb_ci_service" else (table,)


def _page(stream: Stream, page: TablePage) -> Page:
    return Page(stream, page.records, page.cursor, tuple(page.errors))


def _chunks(
    stream: Stream, rows: list[Record], size: int, errors: Sequence[ReadError]
) -> Iterator[Page]:
    """Whole-read streams (no cursor) in pages of `size`; errors on the first page."""
    if not rows:
        if errors:
            yield Page(stream, [], None, tuple(errors))
        return
    for start in range(0, len(rows), size):
        yield Page(stream, rows[start : start + size], None, tuple(errors) if start == 0 else ())
