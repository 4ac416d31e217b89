"""The ServiceNow stand-in's records: tables of string-valued rows, a sys_id index, journals.

Every stored value is a string ("" for empty), reference fields hold the referenced sys_id, as
the Table API returns them with `sysparm_exclude_reference_link=true`. Listing a table includes
the rows of the tables extending it (task lists incidents and problems).

Writes carry the acting user's `user_name` (`sys_created_by`, `sys_updated_by`). A write of a
journal field (`work_notes`, `comments`) stores nothing on the record: it adds a row to the stock
table `sys_journal_field` (`name` = the record's table, `element`, `element_id` = its sys_id,
`value`, `sys_created_on`, `sys_created_by`), which, like the real one, has no `sys_updated_on`.
Deleting a record of a table without the `sys_` prefix adds a `sys_audit_delete` row (`tablename`,
`documentkey`, `sys_created_on`), as an instance's delete auditing does by default; deleting a CI
deletes the `cmdb_rel_ci` rows naming it too (cascade), each audited.
On `task` and `vtb_task` (no workflow of their own), moving `state` into a closed state (3, 4, 7)
stamps `closed_at` and sets `active` false; moving it out clears `closed_at`, `active` true.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sandbox.servicenow.tables import (
    KNOWN_TABLES,
    PARENT,
    declared_fields,
    is_custom_field,
    is_writable_new_table,
    lineage,
    number_prefix,
    reference_table,
)

Row = dict[str, str]
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
JOURNAL_TABLE = "sys_journal_field"
AUDIT_DELETE_TABLE = "sys_audit_delete"  # deleted records of non-sys_ tables
JOURNAL_ELEMENTS = ("work_notes", "comments")
CLOSED_STATES = frozenset({"3", "4", "7"})
STATE_MANAGED = frozenset({"task", "vtb_task"})  # tables whose state drives active / closed_at


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


class TableStore:
    """All tables; thread-safe writes under one lock (reads see whole rows, never halves)."""

    def __init__(self, id_seed: int) -> None:
        self.lock = threading.RLock()
        self.tables: dict[str, dict[str, Row]] = {name: {} for name in KNOWN_TABLES}
        self.by_id: dict[str, tuple[str, Row]] = {}
        self.numbers: dict[str, int] = {}
        self.version = 0  # bumps on every write: cached listings check it
        self._ids = random.Random(f"servicenow-writes:{id_seed}")
        self._listing: dict[str, tuple[int, list[Row]]] = {}
        self._fields: dict[str, tuple[int, frozenset[str]]] = {}
        self._stamps: dict[str, tuple[int, list[str]]] = {}
        self._by_sys_id: dict[str, tuple[int, list[Row], list[str]]] = {}
        self._indexes: dict[str, tuple[int, dict[str, list[Row]]]] = {}
        self._positions: dict[str, tuple[int, dict[str, int]]] = {}
        # Whether stock tables also serve their `u_` fields (a customised instance).
        self.custom_fields = False
        self.schema_stamp: tuple[int, bool] | None = None  # see sandbox.servicenow.schema

    def exists(self, table: str) -> bool:
        return table in self.tables

    def new_sys_id(self) -> str:
        with self.lock:
            return f"{self._ids.getrandbits(128):032x}"

    def load(self, table: str, row: Row) -> None:
        """Add a seeded row as is (no stamping)."""
        self.tables.setdefault(table, {})[row["sys_id"]] = row
        self.by_id[row["sys_id"]] = (table, row)
        self.version += 1

    def rows(self, table: str) -> list[Row]:
        """The table's rows and those of tables extending it, cached until the next write."""
        cached = self._listing.get(table)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        with self.lock:
            rows = [row for name in self._family(table) for row in self.tables[name].values()]
            self._listing[table] = (self.version, rows)
        return rows

    def sorted_rows(self, table: str) -> list[Row]:
        """The listing ordered by (sys_updated_on, sys_id): the keyset paging order."""
        key = f"sorted:{table}"
        cached = self._listing.get(key)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        rows = sorted(self.rows(table), key=lambda r: (r.get("sys_updated_on", ""), r["sys_id"]))
        self._listing[key] = (self.version, rows)
        return rows

    def value_index(self, table: str, name: str) -> dict[str, list[Row]]:
        """The listing's rows by their (case-folded) value of field `name`, each list in
        listing order: an instance answers `field=X` and `fieldIN...` on an indexed column
        (sys_id, references) without reading the table, and so does the stand-in."""
        key = f"index:{table}:{name}"
        cached = self._indexes.get(key)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        index: dict[str, list[Row]] = {}
        for row in self.rows(table):
            index.setdefault(row.get(name, "").casefold(), []).append(row)
        self._indexes[key] = (self.version, index)
        return index

    def by_sys_id(self, table: str) -> tuple[list[Row], list[str]]:
        """The listing ordered by sys_id, and those sys_ids (for bisecting to `sys_id>X`): an
        instance pages `ORDERBYsys_id` along its primary key. Both come from one cache entry
        (requests are served on threads: a pair from two versions would bisect wrong)."""
        cached = self._by_sys_id.get(table)
        if cached is not None and cached[0] == self.version:
            return cached[1], cached[2]
        rows = sorted(self.rows(table), key=lambda r: r["sys_id"])
        ids = [r["sys_id"] for r in rows]
        self._by_sys_id[table] = (self.version, rows, ids)
        return rows, ids

    def positions(self, table: str) -> dict[str, int]:
        """Each row's place in the listing (by sys_id): the order of an unordered query."""
        key = f"positions:{table}"
        cached = self._positions.get(key)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        found = {row["sys_id"]: place for place, row in enumerate(self.rows(table))}
        self._positions[key] = (self.version, found)
        return found

    def sorted_stamps(self, table: str) -> list[str]:
        """sys_updated_on of `sorted_rows(table)`, for bisecting to a keyset cursor."""
        cached = self._stamps.get(table)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        stamps = [r.get("sys_updated_on", "") for r in self.sorted_rows(table)]
        self._stamps[table] = (self.version, stamps)
        return stamps

    def _family(self, table: str) -> Iterator[str]:
        yield table
        for child, parent in PARENT.items():
            if parent == table and child in self.tables:
                yield from self._family(child)

    def fields(self, table: str) -> frozenset[str]:
        """Field names valid in a query on `table` (any seen on its rows, plus references)."""
        key = f"{table}:{self.custom_fields}"
        cached = self._fields.get(key)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        names: set[str] = {"sys_id", "sys_created_on", "sys_updated_on", "sys_mod_count"}
        if table == JOURNAL_TABLE:
            names -= {"sys_updated_on", "sys_mod_count"}  # journal entries are never updated
        names |= declared_fields(table)
        for name in lineage(table):
            rows = self.tables.get(name, {})
            # Seeded tables share their keys (one row tells); written ones may differ per row.
            for row in rows.values() if len(rows) < 1000 else islice(rows.values(), 1):
                names.update(row)
        if not self.custom_fields:
            names = {n for n in names if not is_custom_field(table, n)}
        result = frozenset(names)
        self._fields[key] = (self.version, result)
        return result

    def is_field(self, table: str, path: str) -> bool:
        """Whether a (dot-walked) field exists; dot-walks follow reference fields."""
        name, _, rest = path.partition(".")
        if not self.custom_fields and is_custom_field(table, name):
            return False
        if name not in self.fields(table) and reference_table(table, name) is None:
            return False
        if not rest:
            return True
        target = reference_table(table, name)
        return target is not None and self.is_field(target, rest)

    def get_path(self, row: Row, path: str) -> str:
        """The value of a dot-walked field ("" when a reference along the way is empty)."""
        value = ""
        for index, name in enumerate(path.split(".")):
            if index:
                found = self.by_id.get(value)
                if found is None:
                    return ""
                row = found[1]
            value = row.get(name, "")
        return value

    def find(self, table: str, sys_id: str) -> Row | None:
        found = self.by_id.get(sys_id)
        if found is None or table not in lineage(found[0]):
            return None
        return found[1]

    def journal(self, sys_id: str) -> list[Row]:
        """The journal entries of one record, oldest first."""
        entries = [r for r in self.tables[JOURNAL_TABLE].values() if r["element_id"] == sys_id]
        return sorted(entries, key=lambda r: (r["sys_created_on"], r["sys_id"]))

    def insert(
        self, table: str, fields: dict[str, Any], now: datetime, actor: str = "admin"
    ) -> Row:
        with self.lock:
            if not self.exists(table) and is_writable_new_table(table):
                self.tables[table] = {}
            row: Row = {"sys_id": str(fields.get("sys_id") or self.new_sys_id())}
            prefix = number_prefix(table)
            if prefix is not None:
                self.numbers[prefix] = self.numbers.get(prefix, 1000) + 1
                row["number"] = f"{prefix}{self.numbers[prefix]:07d}"
            if table == "task" or "task" in lineage(table):
                row.update(state="1", active="true")
            row.update(sys_class_name=table, sys_created_by=actor, sys_mod_count="0")
            row.update(sys_created_on=stamp(now))
            self._write(table, row, fields, now, actor)
            self.tables[table][row["sys_id"]] = row
            self.by_id[row["sys_id"]] = (table, row)
            return row

    def update(
        self, table: str, row: Row, fields: dict[str, Any], now: datetime, actor: str = "admin"
    ) -> Row:
        with self.lock:
            row["sys_mod_count"] = str(int(row.get("sys_mod_count") or 0) + 1)
            self._write(table, row, fields, now, actor)
            return row

    def _write(
        self, table: str, row: Row, fields: dict[str, Any], now: datetime, actor: str
    ) -> None:
        was_closed = row.get("state") in CLOSED_STATES
        for name, value in fields.items():
            if name in ("sys_id", "sys_created_on", "sys_mod_count", "sys_class_name"):
                continue
            text = _as_text(value)
            if name in JOURNAL_ELEMENTS and table != JOURNAL_TABLE:
                if text:
                    self._journal_entry(row, name, text, now, actor)
                row[name] = ""
                continue
            row[name] = text
        if table in STATE_MANAGED and "state" in fields:
            _close_or_reopen(row, fields, was_closed, stamp(now))
        row["sys_updated_on"] = stamp(now)
        row["sys_updated_by"] = actor
        self.version += 1

    def _journal_entry(self, row: Row, element: str, text: str, now: datetime, actor: str) -> None:
        """One `sys_journal_field` row: immutable, so it has no `sys_updated_on`."""
        entry: Row = {
            "sys_id": self.new_sys_id(),
            "sys_class_name": JOURNAL_TABLE,
            "name": row.get("sys_class_name", ""),
            "element": element,
            "element_id": row["sys_id"],
            "value": text,
            "sys_created_on": stamp(now),
            "sys_created_by": actor,
        }
        self.tables[JOURNAL_TABLE][entry["sys_id"]] = entry
        self.by_id[entry["sys_id"]] = (JOURNAL_TABLE, entry)

    def delete(self, table: str, sys_id: str, now: datetime | None = None) -> bool:
        """Remove a record; with `now`, audit the deletion in `sys_audit_delete` as an instance
        does for tables without the `sys_` prefix (`tablename` = the record's class,
        `documentkey` = its sys_id, `sys_created_on` = when, to the second)."""
        with self.lock:
            found = self.by_id.pop(sys_id, None)
            if found is None:
                return False
            del self.tables[found[0]][sys_id]
            if now is not None and not found[0].startswith("sys_"):
                self._audit_delete(found[0], found[1], now)
            if "cmdb_ci" in lineage(found[0]) or found[0] == "cmdb_ci":
                # an instance deletes a CI's relations with it (cascade), each audited
                for relation in list(self.tables["cmdb_rel_ci"].values()):
                    if sys_id in (relation.get("parent"), relation.get("child")):
                        self.delete("cmdb_rel_ci", relation["sys_id"], now)
            self.version += 1
            return True

    def _audit_delete(self, table: str, row: Row, now: datetime) -> None:
        entry: Row = {
            "sys_id": self.new_sys_id(),
            "sys_class_name": AUDIT_DELETE_TABLE,
            "tablename": row.get("sys_class_name") or table,
            "documentkey": row["sys_id"],
            "display_value": row.get("name") or row.get("number") or "",
            "sys_created_on": stamp(now),
            "sys_updated_on": stamp(now),
            "sys_created_by": "admin",
        }
        self.tables[AUDIT_DELETE_TABLE][entry["sys_id"]] = entry
        self.by_id[entry["sys_id"]] = (AUDIT_DELETE_TABLE, entry)


def _close_or_reopen(row: Row, fields: dict[str, Any], was_closed: bool, now: str) -> None:
    """A task's state business rule: closing stamps closed_at, reopening clears it; active
    follows the state (unless the write sets these fields itself)."""
    closed = row.get("state") in CLOSED_STATES
    if "active" not in fields:
        row["active"] = "false" if closed else "true"
    if "closed_at" not in fields:
        if closed and not was_closed:
            row["closed_at"] = now
        elif not closed:
            row["closed_at"] = ""


def _as_text(value: Any) -> str:
    """Values are strings in ServiceNow; references may be sent as {"value": id} or {"sys_id"}."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return str(value.get("value", value.get("sys_id", "")))
    if isinstance(value, list):
        return ",".join(_as_text(item) for item in value)
    return str(value)
