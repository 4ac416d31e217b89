"""The generated per-mapping field function (`compile_fields`) maps exactly as the reference
`_field_value` loop: the same values in the same order, the same errors word for word, for
every entity of both shipped mappings over records with every field absent, empty, null, well
formed or malformed."""

from __future__ import annotations

import random
import zlib
from typing import Any

import pytest

from mapping import load_mappings
from mapping.engine import MISSING, EntityMapping, FieldMapping, _field_value, compile_fields
from mapping.expressions import compile_source, plain_key

SAMPLES: tuple[Any, ...] = (
    "",
    None,
    "1",
    "3",
    "true",
    "false",
    "abc",
    "2025-03-01 10:20:30",
    "1970-01-02 03:04:05",
    "not a date",
    "99.5",
    "-7",
    "1 - most critical",
    "SLA",
    "OLA",
    "0123456789abcdef0123456789abcdef",
    "a,b,c",
    ["x", "y"],
    {"value": "v", "display_value": "V"},
    {"name": "n", "emailAddress": "e@example.com", "accountId": "5b10a2844c20165700ede21g"},
    12,
    3.5,
    True,
)


def _reference(fields: tuple[FieldMapping, ...], record: dict[str, Any]) -> tuple[Any, Any]:
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in fields:
        value = _field_value(spec, record, errors)
        if value is not MISSING:
            values[spec.name] = value
    return list(values.items()), list(errors.items())


def _records(mapping: EntityMapping, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    keys = [*mapping.source_fields, "fields", "key", "id"]
    records = []
    for _ in range(count):
        record = {k: rng.choice(SAMPLES) for k in keys if rng.random() < 0.85}
        if rng.random() < 0.5:  # Jira's nested shape
            record["fields"] = {k: rng.choice(SAMPLES) for k in keys if rng.random() < 0.7}
        records.append(record)
    return records


ENTITIES = [
    (system, entity)
    for system in ("servicenow", "jira")
    for entity in load_mappings(system).entities
]


@pytest.mark.parametrize(("system", "entity"), ENTITIES)
def test_compiled_fields_map_as_the_reference_loop(system: str, entity: str) -> None:
    mapping = load_mappings(system).entity(entity)
    fill = compile_fields(mapping.fields)
    outcomes = set()
    for record in _records(mapping, 400, seed=zlib.crc32(f"{system}.{entity}".encode())):
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        fill(record, values, errors)
        assert (list(values.items()), list(errors.items())) == _reference(mapping.fields, record)
        outcomes.add((bool(values), bool(errors)))
    assert (True, True) in outcomes  # the records reached both values and errors


def test_every_branch_of_a_field_agrees() -> None:
    """Required or not, with a default or not, with a transform that fails, returns None or a
    value, and a getter that raises: each combination as the reference maps it."""
    plain, _ = compile_source("a")
    either, _ = compile_source("a || b")
    assert plain_key(plain) == "a" and plain_key(either) is None

    def broken(record: dict[str, Any]) -> Any:
        raise TypeError("cannot read")

    def transform(raw: Any) -> Any:
        if raw == "none":
            return None
        if raw == "bad":
            raise ValueError("unreadable")
        return f"<{raw}>"

    combinations = tuple(
        FieldMapping(f"f{i}", source, getter, step, default, required)
        for i, (source, getter) in enumerate([("a", plain), ("a || b", either), ("x", broken)])
        for step in (None, transform)
        for default in (MISSING, "dflt", None)
        for required in (False, True)
    )
    constant = FieldMapping("constant", None, None, None, "c", False)
    fields = tuple(
        FieldMapping(f"{f.name}_{n}", f.source, f.getter, f.transform, f.default, f.required)
        for n, f in enumerate((*combinations, constant))
    )
    fill = compile_fields(fields)
    for a in ("", None, "none", "bad", "ok", 0, []):
        for b in ("", "other"):
            record = {"a": a, "b": b}
            values: dict[str, Any] = {}
            errors: dict[str, str] = {}
            fill(record, values, errors)
            assert (list(values.items()), list(errors.items())) == _reference(fields, record)
