"""`slm-sync mapping preview`: raw records beside what the mapping makes of them, field by field.

Lets an admin see the effect of a mapping change before anything is written: per record and
entity field, the source expression, the raw value it reads, the mapped value, and the error that
would skip the record; and per record the source fields the instance did not return (a field the
instance lacks is left out of Table API answers without an error). Rendered as rich tables for
people and as JSON-able dicts for `--json`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.table import Table

from mapping.engine import MISSING, EntityMapping, FieldMapping

DERIVED_PREFIX = "slm_"  # fields a connector adds, never returned by the instance


@dataclass(frozen=True)
class PreviewField:
    """One entity field of one record: source, raw value, mapped value, error."""

    name: str
    source: str | None
    raw: Any
    mapped: Any
    error: str | None


@dataclass(frozen=True)
class PreviewRow:
    """One raw record and its outcome: mapped, skipped (with errors) or excluded by the filter."""

    record_id: str
    status: str
    raw: dict[str, Any]
    mapped: dict[str, Any] | None
    errors: dict[str, str]
    fields: tuple[PreviewField, ...]
    missing: tuple[str, ...] = ()  # source fields the record lacks (not returned)


def preview(records: Iterable[dict[str, Any]], entity: EntityMapping) -> list[PreviewRow]:
    """Map `records` with `entity` and keep everything an admin needs to judge the result."""
    return [_row(record, entity) for record in records]


def _row(record: dict[str, Any], entity: EntityMapping) -> PreviewRow:
    outcome = entity.apply(record)
    mapped = None if outcome.entity is None else outcome.entity.model_dump(mode="json")
    status = "mapped" if mapped is not None else "excluded" if outcome.excluded else "skipped"
    fields = tuple(
        _field(spec, record, outcome.values, mapped, outcome.errors) for spec in entity.fields
    )
    missing = tuple(
        name
        for name in entity.source_fields
        if not name.startswith(DERIVED_PREFIX) and name not in record
    )
    return PreviewRow(
        outcome.record_id, status, record, mapped, dict(outcome.errors), fields, missing
    )


def _field(
    spec: FieldMapping,
    record: dict[str, Any],
    values: dict[str, Any],
    mapped: dict[str, Any] | None,
    errors: dict[str, str],
) -> PreviewField:
    raw: Any = None
    if spec.getter is not None:
        try:
            raw = spec.getter(record)
        except Exception as exc:  # shown as the field's error below, as the mapping saw it
            raw = f"<{type(exc).__name__}>"
    if mapped is not None and spec.name in mapped:
        value = mapped[spec.name]
    else:
        value = values.get(spec.name, MISSING)
        value = None if value is MISSING else to_jsonable_python(value, fallback=str)
    return PreviewField(spec.name, spec.source, raw, value, errors.get(spec.name))


def preview_as_json(entity: EntityMapping, rows: list[PreviewRow]) -> dict[str, Any]:
    """One JSON-able object: the entity, a summary, and per record raw, mapped and errors."""
    return {
        "system": entity.system,
        "entity": entity.entity,
        "summary": _summary(rows),
        "records": [
            {
                "record_id": row.record_id,
                "status": row.status,
                "raw": to_jsonable_python(row.raw, fallback=str),
                "mapped": row.mapped,
                "errors": row.errors,
                "missing_fields": list(row.missing),
                "fields": [
                    {
                        "field": f.name,
                        "source": f.source,
                        "raw": to_jsonable_python(f.raw, fallback=str),
                        "mapped": f.mapped,
                        "error": f.error,
                    }
                    for f in row.fields
                ],
            }
            for row in rows
        ],
    }


def _summary(rows: list[PreviewRow]) -> dict[str, int]:
    counts = {"records": len(rows), "mapped": 0, "skipped": 0, "excluded": 0}
    for row in rows:
        counts[row.status] += 1
    return counts


def render_preview(entity: EntityMapping, rows: list[PreviewRow], console: Console) -> None:
    """Print one table per record (field, source, raw, mapped, error) and a summary line."""
    for row in rows:
        table = Table(
            title=f"{entity.entity} {row.record_id or '<no id>'}: {row.status}",
            title_justify="left",
            show_lines=False,
        )
        for column in ("field", "source", "raw", "mapped", "error"):
            table.add_column(column, overflow="fold", style="red" if column == "error" else None)
        for f in row.fields:
            table.add_row(f.name, f.source or "", _cell(f.raw), _cell(f.mapped), f.error or "")
        for name, reason in row.errors.items():
            if name not in {f.name for f in row.fields}:
                table.add_row(name, "", "", "", reason)
        console.print(table)
        if row.missing:
            console.print(
                f"  not returned by the instance: {', '.join(row.missing)} "
                "(the instance lacks them or ACLs hide them, see `slm-sync doctor`; or the "
                "connector's field list, servicenow.fields.<stream>, does not name them)"
            )
    counts = _summary(rows)
    console.print(
        f"{counts['records']} record(s): {counts['mapped']} mapped, "
        f"{counts['skipped']} skipped, {counts['excluded']} excluded by the filter"
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
