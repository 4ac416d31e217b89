"""The Aggregate API (`GET /api/now/stats/<table>`): count, avg / min / max / sum, group by.

Without `sysparm_group_by` the result is one object, `{"stats": {"count": "56"}}` (as recorded in
reference/servicenow/recorded/Aggregate_getAggregate-default.json); with it, a list of
`{"stats": {...}, "groupby_fields": [{"field", "value"}]}`. All numbers are strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.servicenow.query import compile_filter, parse_query
from sandbox.servicenow.store import Row, TableStore

_FUNCTIONS = ("avg", "min", "max", "sum")


def aggregate(store: TableStore, table: str, args: Mapping[str, str]) -> Any:
    query = parse_query(args.get("sysparm_query", ""))
    matches = compile_filter(query, lambda name: store.is_field(table, name), store.get_path)
    rows = [r for r in store.rows(table) if matches is None or matches(r)]
    group_by = [f for f in args.get("sysparm_group_by", "").split(",") if f]
    if not group_by:
        return {"stats": _stats(store, rows, args)}
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(store.get_path(row, f) for f in group_by), []).append(row)
    return [
        {
            "stats": _stats(store, members, args),
            "groupby_fields": [
                {"field": f, "value": v} for f, v in zip(group_by, key, strict=True)
            ],
        }
        for key, members in sorted(groups.items())
    ]


def _stats(store: TableStore, rows: list[Row], args: Mapping[str, str]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    if args.get("sysparm_count", "false").lower() == "true":
        stats["count"] = str(len(rows))
    for function in _FUNCTIONS:
        fields = [f for f in args.get(f"sysparm_{function}_fields", "").split(",") if f]
        if fields:
            stats[function] = {f: _apply(function, store, rows, f) for f in fields}
    return stats


def _apply(function: str, store: TableStore, rows: list[Row], field: str) -> str:
    numbers: list[float] = []
    for row in rows:
        try:
            numbers.append(float(store.get_path(row, field)))
        except ValueError:
            continue
    if not numbers:
        return ""
    value = {
        "avg": sum(numbers) / len(numbers),
        "min": min(numbers),
        "max": max(numbers),
        "sum": sum(numbers),
    }[function]
    return f"{value:.4f}".rstrip("0").rstrip(".") if function == "avg" else f"{value:g}"
