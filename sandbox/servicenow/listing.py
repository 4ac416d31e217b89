"""Selecting a page of rows for the Table API: query, order, limit / offset, `Link` header.

`sysparm_limit` defaults to 10000 and is silently capped at 10000, as on a stock instance
(glide.db.max_view_records). Ordering by `sys_updated_on` (then `sys_id`) uses a sorted index
kept per table, and with `sysparm_no_count=true` the scan stops once the page is full, so keyset
paging over many rows stays cheap.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload
from urllib.parse import urlencode

from sandbox.servicenow.query import (
    EncodedQuery,
    compile_filter,
    names_unknown_field,
    parse_query,
)
from sandbox.servicenow.store import Row, TableStore

MAX_LIMIT = 10000


@dataclass
class Page:
    rows: list[Row]
    total: int | None  # None when counting was switched off
    offset: int
    limit: int
    full: bool  # the page was filled up to the limit (more may follow)


def select(
    store: TableStore,
    table: str,
    query_text: str,
    limit: int,
    offset: int,
    count: bool,
    invalid_returns_no_rows: bool = False,
) -> Page:
    query = parse_query(query_text)
    if invalid_returns_no_rows and names_unknown_field(
        query, lambda name: store.is_field(table, name)
    ):
        return _page([], limit, offset, counted=count)
    matches = compile_filter(query, lambda name: store.is_field(table, name), store.get_path)
    order = [(name, desc) for name, desc in query.order_by if store.is_field(table, name)]
    indexed = None if matches is None else _indexed(store, table, query)
    if matches is not None and indexed is not None:
        chosen = [row for row in _in_order(store, table, indexed, order) if matches(row)]
        return _page(chosen, limit, offset, counted=count)
    rows = _ordered(store, table, order, _lower_bound(query), query)
    if order and rows is None:
        listed = store.rows(table)
        filtered = listed if matches is None else [r for r in listed if matches(r)]
        return _page(_sort(store, filtered, order), limit, offset)
    candidates: Sequence[Row] = rows if rows is not None else store.rows(table)
    if count or matches is None:
        kept = candidates if matches is None else [r for r in candidates if matches(r)]
        return _page(kept, limit, offset, counted=count)
    return _page_without_count(candidates, matches, limit, offset)


def _indexed(store: TableStore, table: str, query: EncodedQuery) -> list[Row] | None:
    """The rows an index answers for: every NQ group has a plain `field=X` or `fieldIN...` AND
    term on the table's own field; None when some group has none (the table is scanned)."""
    picks = []
    for group in query.groups:
        pick = next(
            (
                term[0]
                for term in group
                if len(term) == 1
                and term[0].operator in ("=", "IN")
                and "." not in term[0].field
                and store.is_field(table, term[0].field)
            ),
            None,
        )
        if pick is None:
            return None
        picks.append(pick)
    found: dict[str, Row] = {}
    for condition in picks:
        index = store.value_index(table, condition.field)
        values = [condition.value] if condition.operator == "=" else condition.value.split(",")
        for value in values:
            for row in index.get(value.casefold(), ()):
                found[row["sys_id"]] = row
    return list(found.values()) if picks else None


def _in_order(
    store: TableStore, table: str, rows: list[Row], order: list[tuple[str, bool]]
) -> list[Row]:
    """`rows` in the order the scan would have given them: listing order, then `order`."""
    positions = store.positions(table)
    listed = sorted(rows, key=lambda row: positions.get(row["sys_id"], 0))
    names = [name for name, _ in order]
    indexed_order = names in (["sys_updated_on"], ["sys_updated_on", "sys_id"])
    if indexed_order and len({desc for _, desc in order}) == 1:
        ordered = sorted(listed, key=lambda r: (r.get("sys_updated_on", ""), r["sys_id"]))
        return list(reversed(ordered)) if order[0][1] else ordered
    return _sort(store, listed, order) if order else listed


class _Tail(Sequence[Row]):
    """The rows of a list from `start` on, without copying them: keyset paging asks for the
    rows after its cursor on every page, and a copy of a million-row tail per page made the
    stand-in quadratic where an instance's index seek is not."""

    def __init__(self, rows: list[Row], start: int) -> None:
        self.rows, self.start = rows, start

    def __len__(self) -> int:
        return len(self.rows) - self.start

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if isinstance(index, slice):
            begin, end, step = index.indices(len(self))
            if step < 0:  # no caller walks backwards: copy rather than shift the bounds
                return self.rows[self.start :][index]
            return self.rows[self.start + begin : self.start + end : step]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.rows[self.start + index]

    def __iter__(self) -> Iterator[Row]:
        rows = self.rows
        return (rows[i] for i in range(self.start, len(rows)))


def _page(rows: Sequence[Row], limit: int, offset: int, counted: bool = True) -> Page:
    page = list(rows[offset : offset + limit])
    return Page(page, len(rows) if counted else None, offset, limit, len(page) == limit)


def _page_without_count(
    rows: Sequence[Row], matches: Callable[[Row], bool], limit: int, offset: int
) -> Page:
    page: list[Row] = []
    skipped = 0
    for row in rows:
        if not matches(row):
            continue
        if skipped < offset:
            skipped += 1
            continue
        page.append(row)
        if len(page) == limit:
            break
    return Page(page, None, offset, limit, len(page) == limit)


def _ordered(
    store: TableStore,
    table: str,
    order: list[tuple[str, bool]],
    since: str | None,
    query: EncodedQuery,
) -> Sequence[Row] | None:
    """Rows in the requested order from the sorted index, if the order is the indexed one;
    ascending scans start at `since` (no row before it can match)."""
    names = [name for name, _ in order]
    if names == ["sys_id"] and not order[0][1]:  # the primary key, from a `sys_id>X` cursor
        by_id, ids = store.by_sys_id(table)
        after = _sys_id_bound(query)
        return by_id if after is None else _Tail(by_id, bisect_right(ids, after))
    if names not in (["sys_updated_on"], ["sys_updated_on", "sys_id"]):
        return None
    if len({desc for _, desc in order}) != 1:
        return None
    rows = store.sorted_rows(table)
    if order[0][1]:
        return list(reversed(rows))
    if since is None:
        return rows
    return _Tail(rows, bisect_left(store.sorted_stamps(table), since))


def _lower_bound(query: EncodedQuery) -> str | None:
    """The smallest sys_updated_on any matching row can have, if every NQ group bounds it
    (`sys_updated_on>X`, `>=X` or `=X` as a plain AND term): keyset paging's cursor."""
    return _group_bound(query, "sys_updated_on", (">", ">=", "="))


def _sys_id_bound(query: EncodedQuery) -> str | None:
    """The sys_id every matching row is above, if every NQ group says so (`sys_id>X` as a plain
    AND term): read_by_id's cursor."""
    return _group_bound(query, "sys_id", (">",))


def _group_bound(query: EncodedQuery, field: str, operators: tuple[str, ...]) -> str | None:
    """The lowest value of `field` a matching row can have from below, when every NQ group
    bounds it with one of `operators` as a plain AND term (the tightest in each group, the
    loosest over the groups); None when some group does not."""
    bounds = []
    for terms in query.groups:
        values = [
            term[0].value
            for term in terms
            if len(term) == 1 and term[0].field == field and term[0].operator in operators
        ]
        if not values:
            return None
        bounds.append(max(values))
    return min(bounds) if bounds else None


def _sort(store: TableStore, rows: list[Row], order: list[tuple[str, bool]]) -> list[Row]:
    result = list(rows)
    for name, descending in reversed(order):
        if "." in name:
            result.sort(key=lambda row, n=name: store.get_path(row, n), reverse=descending)  # type: ignore[misc]
        else:
            result.sort(key=lambda row, n=name: row.get(n, ""), reverse=descending)  # type: ignore[misc]
    return result


def parse_limit(text: str | None) -> int:
    try:
        value = int(text) if text else MAX_LIMIT
    except ValueError:
        value = MAX_LIMIT
    return MAX_LIMIT if value <= 0 else min(value, MAX_LIMIT)


def parse_offset(text: str | None) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0


def link_header(url: str, params: dict[str, str], page: Page) -> str:
    """The Table API's `Link` header: first, prev, next and last (last only when counted)."""
    links: list[tuple[str, int]] = [("first", 0)]
    if page.offset > 0:
        links.append(("prev", max(0, page.offset - page.limit)))
    has_next = page.offset + page.limit < page.total if page.total is not None else page.full
    if has_next:
        links.append(("next", page.offset + page.limit))
    if page.total is not None:
        last = max(0, (page.total - 1) // page.limit * page.limit)
        links.append(("last", last))
    parts = []
    for rel, offset in links:
        query = {**params, "sysparm_limit": str(page.limit), "sysparm_offset": str(offset)}
        parts.append(f'<{url}?{urlencode(query)}>;rel="{rel}"')
    return ",".join(parts)


__all__ = ["MAX_LIMIT", "EncodedQuery", "Page", "link_header", "parse_limit", "select"]
