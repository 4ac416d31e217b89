"""Doctor's schema check for ServiceNow: every field the mapping and the connector read exists.

The Table API leaves unknown fields out of its answers and ignores (or, with
`glide.invalid_query.returns_no_rows`, answers nothing for) conditions on them, so a field the
instance lacks fails silently at run time. Here each table's lineage comes from
`sys_db_object` (`super_class`), its fields from `sys_dictionary` (`nameIN<lineage>`), and each
read field, dot-walks through reference fields included, is looked up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from config import Settings
from connectors import AuthError
from connectors.servicenow import SPM_READS, Guard, TableClient, connector_reads
from mapping import SystemMapping
from mapping.schema import FieldRead, mapping_reads
from sync.doctor.check import Verdict, failed, passed

GRANT_FIX = (
    "ask the ServiceNow admin to let the integration user read sys_dictionary and "
    "sys_db_object (a read ACL on both tables, or the personalize_dictionary role)"
)
MAX_SHOWN = 12


@dataclass
class Schema:
    """Tables and fields of one instance, read on demand and cached."""

    client: TableClient
    guard: Guard
    _lineage: dict[str, list[str] | None] = field(default_factory=dict)
    _fields: dict[str, dict[str, str]] = field(default_factory=dict)

    def _list(self, table: str, query: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
        result = self.guard.call(
            lambda: self.client.list(table, query=query, fields=fields, limit=10000),
            what=f"table {table}",
        )
        return [{k: str(v or "") for k, v in row.items()} for row in result.records]

    def lineage(self, table: str) -> list[str] | None:
        """The table and its ancestors (sys_db_object.super_class), None if it does not exist."""
        if table not in self._lineage:
            chain: list[str] = []
            rows = self._list("sys_db_object", f"name={table}", ("sys_id", "name", "super_class"))
            while rows and len(chain) < 20:
                chain.append(rows[0]["name"])
                parent = rows[0].get("super_class", "")
                rows = self._list("sys_db_object", f"sys_id={parent}", ("sys_id", "name",
                                  "super_class")) if parent else []  # fmt: skip
            self._lineage[table] = chain or None
        return self._lineage[table]

    def fields(self, table: str) -> dict[str, str] | None:
        """Field -> referenced table ("" for plain fields) over the lineage; None if no table."""
        chain = self.lineage(table)
        if chain is None:
            return None
        missing = [t for t in chain if t not in self._fields]
        if missing:
            rows = self._list("sys_dictionary", "nameIN" + ",".join(missing),
                              ("name", "element", "reference"))  # fmt: skip
            for name in missing:
                self._fields[name] = {}
            for row in rows:
                if row.get("element"):
                    self._fields.setdefault(row["name"], {})[row["element"]] = row.get(
                        "reference", ""
                    )
        return {k: v for t in chain for k, v in self._fields.get(t, {}).items()}

    def has(self, table: str, path: str) -> bool:
        """Whether `path` (dot-walks through references allowed) is a field of `table`."""
        known = self.fields(table) or {}
        name, _, rest = path.partition(".")
        if name not in known:
            return False
        return not rest or (bool(known[name]) and self.has(known[name], rest))


def entity_tables(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The tables each mapping entity's records come from."""
    t = settings.servicenow.tables
    return {
        "service": (t.services,), "component": (t.components,), "person": (t.people,),
        "agreement": (t.agreements,), "sla_record": (t.sla_records,), "csat_response": (t.csat,),
        "material": (t.knowledge, t.problems),
    }  # fmt: skip


def check_mapping(schema: Schema, mapping: SystemMapping, settings: Settings) -> Verdict:
    """Every field the mapping reads exists on its table; else file:line and the field."""
    if not schema.fields(settings.servicenow.tables.agreements):
        return failed("sys_dictionary / sys_db_object answered no rows: cannot check", GRANT_FIX)
    tables = entity_tables(settings)
    missing = [read for read in mapping_reads(mapping) if _absent(schema, read, tables)]
    if missing:
        lines = [
            f"{r.where}: entities.{r.entity}.{r.key}: {r.name!r} is not a field of "
            f"{' / '.join(tables.get(r.entity, ('?',)))}"
            for r in missing
        ]
        return failed(
            _listing(lines),
            f"edit {mapping.path}: read a field your instance has (stock fields, see "
            "mapping/README.md), or have the admin add the custom field",
        )
    return passed(f"{len(mapping_reads(mapping))} field reads of {mapping.path} exist")


def _absent(schema: Schema, read: FieldRead, tables: dict[str, tuple[str, ...]]) -> bool:
    return not any(schema.has(table, read.name) for table in tables.get(read.entity, ()))


def check_connector(schema: Schema, settings: Settings) -> Verdict:
    """Every table and field the connector's queries name exists (SPM tables are optional)."""
    missing = [
        f"{table}.{name}"
        for table, names in connector_reads(settings.servicenow).items()
        for name in names
        if not schema.has(table, name)
    ]
    spm = [table for table in SPM_READS if schema.lineage(table) is None]
    note = (
        "; Service Portfolio Management tables absent: targets from servicenow.default_targets"
        if spm
        else "; Service Portfolio Management commitments found"
    )
    spm_missing = [
        f"{table}.{name}"
        for table, names in SPM_READS.items()
        if table not in spm
        for name in names
        if not schema.has(table, name)
    ]
    if missing or spm_missing:
        return failed(
            "fields the connector reads are missing: " + _listing([*missing, *spm_missing]),
            "set servicenow.fields.<stream> / servicenow.tables.* to what your instance has",
        )
    return passed("every table and field the connector reads exists" + note)


def _listing(lines: Iterable[str]) -> str:
    shown = list(lines)
    more = len(shown) - MAX_SHOWN
    return "; ".join(shown[:MAX_SHOWN]) + (f"; and {more} more" if more > 0 else "")


def unreadable(error: AuthError) -> Verdict:
    """The dictionary tables refused us."""
    return failed(f"cannot read the schema: {error.args[0]}", GRANT_FIX)
