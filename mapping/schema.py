"""Which source fields a mapping reads, and where in the file: for `slm-sync doctor`'s schema
check (every field must exist on the instance, or the Table API silently leaves it out)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jmespath

from config.yamlfile import load_yaml
from mapping.loader import SystemMapping

DERIVED_PREFIX = "slm_"  # fields the connectors add; never on the instance


@dataclass(frozen=True)
class FieldRead:
    """One source field one mapping entry reads: `entities.<entity>.<key>` at `where`."""

    entity: str
    key: str  # "fields.target_percent", "id", "table", "filter"
    name: str  # the source field, possibly dot-walked ("task.priority")
    where: str  # "file:line"


def mapping_reads(mapping: SystemMapping) -> list[FieldRead]:
    """Every source field of every entity, with the file and line of the entry naming it."""
    document = load_yaml(mapping.path)
    reads: list[FieldRead] = []
    for entity_name, entity in mapping.entities.items():
        raw = document.data.get("entities", {}).get(entity_name, {})
        raw = raw if isinstance(raw, dict) else {}
        entries: list[tuple[str, str | None]] = [
            (key, raw[key]) for key in ("id", "filter") if isinstance(raw.get(key), str)
        ]
        entries.append(("table", entity.table.source))
        entries += [(f"fields.{f.name}", f.source) for f in entity.fields]
        for key, expression in entries:
            where = document.where(("entities", entity_name, *key.split(".")))
            reads += [
                FieldRead(entity_name, key, name, where)
                for name in dict.fromkeys(expression_fields(expression))
                if not name.startswith(DERIVED_PREFIX)
            ]
    return reads


def expression_fields(expression: str | None) -> Iterator[str]:
    """The record keys a JMESPath expression reads (`a || b` -> a, b)."""
    if not expression:
        return
    try:
        tree = jmespath.compile(expression).parsed
    except jmespath.exceptions.JMESPathError:
        return
    yield from _fields(tree)


def _fields(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("type") == "field":
            yield str(node.get("value"))
        for child in node.get("children", []):
            yield from _fields(child)
