"""`sys_db_object` and `sys_dictionary`: the stand-in's schema, as a client reads it.

One `sys_db_object` row per table (`super_class` references the parent table's row) and one
`sys_dictionary` row per field a table defines itself (`name` = table, `element` = field;
inherited fields are rows of the parent table, as on a real instance). Rebuilt from the store
when it changed or when the custom-fields knob flipped, so a stock instance lists no `u_` field
of a stock table and a table created by a write appears.
"""

from __future__ import annotations

import hashlib

from sandbox.servicenow.store import TableStore
from sandbox.servicenow.tables import PARENT, reference_table

SCHEMA_TABLES = ("sys_db_object", "sys_dictionary")
STAMP = "2019-01-01 00:00:00"


def _id(*parts: str) -> str:
    return hashlib.md5(":".join(parts).encode(), usedforsecurity=False).hexdigest()


def refresh_schema(store: TableStore) -> None:
    """Rebuild both schema tables if the store changed since the last rebuild."""
    stamp = (store.version, store.custom_fields)
    if store.schema_stamp == stamp:
        return
    with store.lock:
        for name in SCHEMA_TABLES:
            for sys_id in store.tables.get(name, {}):
                store.by_id.pop(sys_id, None)
            store.tables[name] = {}
        for table in sorted(n for n in store.tables if n not in SCHEMA_TABLES):
            _describe(store, table)
        store.schema_stamp = (store.version, store.custom_fields)


def _describe(store: TableStore, table: str) -> None:
    parent = PARENT.get(table, "")
    store.load(
        "sys_db_object",
        _row("sys_db_object", _id("sys_db_object", table),
             name=table, label=table, super_class=_id("sys_db_object", parent) if parent else ""),
    )  # fmt: skip
    inherited = store.fields(parent) if parent else frozenset()
    for element in sorted(store.fields(table) - inherited):
        target = reference_table(table, element)
        store.load(
            "sys_dictionary",
            _row("sys_dictionary", _id("sys_dictionary", table, element),
                 name=table, element=element, column_label=element, active="true",
                 internal_type="reference" if target else "string", reference=target or ""),
        )  # fmt: skip


def _row(table: str, sys_id: str, **fields: str) -> dict[str, str]:
    return {"sys_id": sys_id, "sys_class_name": table, "sys_created_on": STAMP,
            "sys_updated_on": STAMP, **fields}  # fmt: skip
