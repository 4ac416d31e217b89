"""Keyset paging over one table: ordered by (sys_updated_on, sys_id), bounded by the run's start.

Each page asks for rows strictly after the last row seen (see `query.after`), so rows sharing a
second are neither skipped nor read twice, and rows that ACLs hide only shorten a page: paging
stops on an *empty* page, never on a short one. Offsets and the `Link` header are never used
(offsets skip and repeat rows while data changes; a stock instance caps a page at 10000).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from connectors.base import Cursor
from connectors.errors import ConnectorError
from connectors.servicenow import query
from connectors.servicenow.client import SYSTEM, Record, TableClient
from connectors.servicenow.guard import Guard
from connectors.servicenow.streams import KEYSET_FIELDS, StreamSpec


@dataclass
class TablePage:
    """The readable rows of one response, the problems found, the cursor after them."""

    records: list[Record]
    cursor: Cursor | None
    errors: list[str] = field(default_factory=list)


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

    def pages(self) -> Iterator[TablePage]:
        """Every page, until the instance answers an empty one."""
        cursor = self.since
        fields = tuple(dict.fromkeys((*KEYSET_FIELDS, *self.spec.fields)))
        while True:
            result = self.guard.call(
                lambda c=cursor: self.client.list(  # type: ignore[misc]
                    self.spec.table,
                    query=self.condition(c),
                    fields=fields,
                    limit=self.page_size,
                ),
                what=f"table {self.spec.table}",
            )
            if not result.records:
                return
            page = read_rows(self.spec.table, result.records, cursor)
            if page.cursor == cursor and not page.records:
                raise ConnectorError(
                    f"{SYSTEM}: table {self.spec.table} returned a page without sys_id or "
                    f"sys_updated_on after {cursor}; paging cannot advance",
                    system=SYSTEM,
                    hint="give the integration user read access to sys_id and sys_updated_on",
                )
            yield page
            cursor = page.cursor

    def condition(self, cursor: Cursor | None) -> str:
        """The encoded query of the page after `cursor`."""
        parts = [self.spec.filter, self.extra]
        if cursor is not None:
            parts.append(query.after(cursor.updated, cursor.id) if cursor.id else "")
            parts.append(query.since_stamp(cursor.updated) if not cursor.id else "")
        if self.until:
            parts.append(query.not_after(self.until))
        return query.ordered(query.conjoin(parts))


def read_rows(table: str, rows: list[Record], cursor: Cursor | None) -> TablePage:
    """Keep rows that carry their keys; report the others by sys_id; advance the cursor."""
    page = TablePage(records=[], cursor=cursor)
    for row in rows:
        if not isinstance(row, dict):
            page.errors.append(f"{table}: a row that is not a JSON object: {str(row)[:80]}")
            continue
        sys_id, updated = row.get("sys_id"), row.get("sys_updated_on")
        if not isinstance(sys_id, str) or not query.SYS_ID.match(sys_id):
            page.errors.append(f"{table} record {sys_id or '(no sys_id)'}: missing or bad sys_id")
            continue
        if not isinstance(updated, str) or not updated:
            page.errors.append(f"{table} record {sys_id}: missing sys_updated_on, skipped")
            continue
        page.records.append(row)
        page.cursor = Cursor(updated, sys_id)
    return page
