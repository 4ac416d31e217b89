"""Keyset paging over one table: ordered by (sys_updated_on, sys_id), bounded by the run's start.

Each page asks for rows strictly after the last row seen (see `query.after`), so rows sharing a
second are neither skipped nor read twice, and rows that ACLs hide only shorten a page: paging
stops on an *empty* page, never on a short one. Offsets and the `Link` header are never used
(offsets skip and repeat rows while data changes; a stock instance caps a page at 10000).

An incremental read starts `overlap_seconds` before the committed cursor, not at it: a row
written late into an already-read second (an import that sets the stamp, a long transaction,
clock drift beyond the skew) sorts *behind* the cursor and would never be read otherwise. The
re-read rows come back again; the sync layer drops those it already stores unchanged. The
cursor a page carries never moves back behind the committed one.

A read that reached its end has seen every row up to the run's bound. When the cursor is more
than the overlap behind that bound, the read ends with an empty page carrying the bound itself
(`settled`): otherwise the overlap window would hold the last row read forever and every idle
read would cost two requests (the re-read page, then the empty one) instead of one. The cursor
moves this way at most once per overlap period.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from connectors.base import Cursor, ReadError
from connectors.errors import ConnectorError
from connectors.servicenow import query
from connectors.servicenow.batch import ListRequest
from connectors.servicenow.client import SYSTEM, Record, TableClient
from connectors.servicenow.guard import Guard
from connectors.servicenow.streams import KEYSET_FIELDS, StreamSpec

STAMP = "%Y-%m-%d %H:%M:%S"  # sys_updated_on as the Table API returns it (UTC user)


@dataclass
class TablePage:
    """The readable rows of one response, the problems found, the cursor after them."""

    records: list[Record]
    cursor: Cursor | None
    errors: list[ReadError] = field(default_factory=list)


@dataclass
class KeysetPager:
    """Pages of `spec.table` after `since`, up to `until` ("YYYY-MM-DD HH:MM:SS", UTC)."""

    client: TableClient
    guard: Guard
    spec: StreamSpec
    page_size: int
    since: Cursor | None = None
    until: str | None = None
    extra: str = ""  # a condition built by the connector (sys_idIN..., service links)
    overlap_seconds: int = 0  # start this far behind `since` (late rows; see the module doc)
    # NQ groups: a row matches when it matches one of them. Every other condition (filter,
    # extra, cursor, bound) is repeated in each group: `A^NQB^C` reads `A OR (B AND C)`.
    either: tuple[str, ...] = ()

    def pages(self) -> Iterator[TablePage]:
        """Every page, until the instance answers an empty one."""
        cursor = overlapped(self.since, self.overlap_seconds)
        end = settled(self.since, self.until, self.overlap_seconds)
        while True:
            result = self.guard.list(self.client, self.request(cursor))
            if not result.records:
                if end is not None:
                    yield TablePage(records=[], cursor=end)
                return
            page = read_rows(self.spec.table, result.records, cursor)
            if page.cursor == cursor and not page.records:
                raise ConnectorError(
                    f"{SYSTEM}: table {self.spec.table} returned a page without sys_id or "
                    f"sys_updated_on after {cursor}; paging cannot advance",
                    system=SYSTEM,
                    hint="give the integration user read access to sys_id and sys_updated_on",
                )
            cursor = page.cursor
            end = settled(later(self.since, cursor), self.until, self.overlap_seconds)
            yield replace(page, cursor=later(self.since, page.cursor))

    def first_request(self) -> ListRequest:
        """The read of the first page (a batch call may fetch it ahead: see `batch`)."""
        return self.request(overlapped(self.since, self.overlap_seconds))

    def request(self, cursor: Cursor | None) -> ListRequest:
        """The read of the page after `cursor`."""
        fields = tuple(dict.fromkeys((*KEYSET_FIELDS, *self.spec.fields)))
        return ListRequest(self.spec.table, self.condition(cursor), fields, self.page_size)

    def condition(self, cursor: Cursor | None) -> str:
        """The encoded query of the page after `cursor`."""
        parts = [self.spec.filter, self.extra]
        if cursor is not None:
            parts.append(query.after(cursor.updated, cursor.id) if cursor.id else "")
            parts.append(query.since_stamp(cursor.updated) if not cursor.id else "")
        if self.until:
            parts.append(query.not_after(self.until))
        if not self.either:
            return query.ordered(query.conjoin(parts))
        groups = [query.conjoin([group, *parts]) for group in self.either]
        return query.ordered(query.any_of(groups))


def overlapped(since: Cursor | None, seconds: int) -> Cursor | None:
    """Where a read from `since` starts: the whole second `seconds` earlier (no id)."""
    if since is None or not since.updated or seconds <= 0:
        return since
    try:
        moment = datetime.strptime(since.updated[:19], STAMP)
    except ValueError:
        return since  # not a ServiceNow stamp: read from the cursor itself
    return Cursor((moment - timedelta(seconds=seconds)).strftime(STAMP))


def settled(cursor: Cursor | None, until: str | None, overlap_seconds: int) -> Cursor | None:
    """The bound as the cursor after a read that ended, if `cursor` is more than the overlap
    behind it (see the module doc); None to leave the cursor where the rows put it."""
    if not until:
        return None
    if cursor is None:
        return Cursor(until)
    try:
        bound = datetime.strptime(until[:19], STAMP)
        last = datetime.strptime(cursor.updated[:19], STAMP)
    except ValueError:
        return None
    return Cursor(until) if last < bound - timedelta(seconds=overlap_seconds) else None


def later(committed: Cursor | None, cursor: Cursor | None) -> Cursor | None:
    """The later of two cursors: a page re-read in the overlap never moves the cursor back."""
    if committed is None or cursor is None:
        return cursor or committed
    return max(committed, cursor)


def read_rows(table: str, rows: list[Record], cursor: Cursor | None) -> TablePage:
    """Keep rows that carry their keys; report the others by sys_id; advance the cursor."""
    page = TablePage(records=[], cursor=cursor)
    for row in rows:
        if not isinstance(row, dict):
            reason = f"a row that is not a JSON object: {str(row)[:80]}"
            page.errors.append(ReadError(table, "(no sys_id)", reason))
            continue
        sys_id, updated = row.get("sys_id"), row.get("sys_updated_on")
        if not isinstance(sys_id, str) or not query.SYS_ID.match(sys_id):
            reason = "missing or bad sys_id; give the integration user read access to sys_id"
            page.errors.append(ReadError(table, str(sys_id or "(no sys_id)")[:80], reason))
            continue
        if not isinstance(updated, str) or not updated:
            reason = "missing sys_updated_on, skipped; give the integration user read access"
            page.errors.append(ReadError(table, sys_id, reason))
            continue
        page.records.append(row)
        page.cursor = Cursor(updated, sys_id)
    return page
