"""Applying a compiled entity mapping to raw records: per field get, transform, default, check.

A record that cannot be mapped (a bad date, a missing required field, a value the review model
rejects) is skipped and reported as a `review.SkippedRecord` naming the record, the field and the
reason, and logged as `mapping.record_skipped`; it never stops a run. A record the entity's
`filter` rejects is excluded silently (it is not data the review is about, e.g. cancelled SLAs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from mapping.allocation import spaced_collections
from mapping.expressions import Getter, plain_key
from mapping.transforms import Transform
from review import SkippedRecord

log = structlog.get_logger("slm_sync.mapping")

MISSING: Any = object()
T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class FieldMapping:
    """One compiled field: where its value comes from and what happens to it."""

    name: str
    source: str | None
    getter: Getter | None
    transform: Transform | None
    default: Any = MISSING
    required: bool = False


@dataclass(frozen=True)
class MappedRecord:
    """One raw record's outcome: the entity, or the errors per field that kept it out."""

    record_id: str
    entity: BaseModel | None
    values: dict[str, Any]
    errors: dict[str, str]
    excluded: bool = False


@dataclass(frozen=True)
class EntityMapping:
    """A compiled mapping of one review entity; `apply` runs per record, nothing is re-parsed."""

    system: str
    entity: str
    model: type[BaseModel]
    id_getter: Getter
    table: FieldMapping
    fields: tuple[FieldMapping, ...]
    keep: Callable[[dict[str, Any]], bool] | None = None
    source_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The fields' per-record work as one generated function (see `compile_fields`).
        object.__setattr__(self, "_fill", compile_fields(self.fields))

    def apply(self, record: dict[str, Any]) -> MappedRecord:
        """Map one raw record; never raises for bad data."""
        record_id = _text(self.id_getter(record))
        if self.keep is not None and not self.keep(record):
            return MappedRecord(record_id, None, {}, {}, excluded=True)
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        self._fill(record, values, errors)
        if not record_id:
            errors["id"] = "the record has no id"
        if errors:
            return MappedRecord(record_id, None, values, errors)
        table = _field_value(self.table, record, errors)
        # Three plain strings, validated with the entity in one pass (pydantic-core builds
        # the SourceRef: cheaper than model_construct, and this runs for every record).
        values["source"] = {"system": self.system, "table": _text(table), "id": record_id}
        try:  # the model's validator itself: `model_validate` adds a call and its checks
            entity = self.model.__pydantic_validator__.validate_python(values)
        except ValidationError as exc:
            return MappedRecord(record_id, None, values, _model_errors(exc))
        return MappedRecord(record_id, entity, values, errors)

    _fill: Callable[[dict[str, Any], dict[str, Any], dict[str, str]], None] = field(
        init=False, repr=False, compare=False
    )


Filler = Callable[[dict[str, Any], dict[str, Any], dict[str, str]], None]


def compile_fields(fields: tuple[FieldMapping, ...]) -> Filler:
    """One function doing `_field_value` for every field of a mapping, in order, into the
    record's `values` (a field without value left out) and `errors` (a field's problem).

    Generated once per mapping, so that a record costs no call per field: the loop, the call
    into `_field_value` and, for a plain key (`sys_id`, `"task.number"`), the getter's call
    were a good part of the mapping's time. The generated text holds the field names, plain
    keys and messages as string literals (their `repr`) and names each field's getter,
    transform and default (`g0`, `t0`, `d0`) from its scope; `_field_value` stays the
    reference it must agree with (tests/mapping/test_compiled_fields.py compares both on
    every shipped mapping and every branch)."""
    lines = ["def fill(record, values, errors):", "    get = record.get"]
    scope: dict[str, Any] = {}
    for i, spec in enumerate(fields):
        name = repr(spec.name)
        key = plain_key(spec.getter) if spec.getter is not None else None
        if spec.getter is None:
            read = "None"
        elif key is not None:
            read = f"get({key!r})"
        else:
            scope[f"g{i}"] = spec.getter
            read = f"g{i}(record)"
        scope[f"d{i}"] = spec.default
        missing = spec.required and spec.default is MISSING
        source = f" ({spec.source})" if spec.source else ""
        when_missing = (
            [f"errors[{name}] = {f'required value missing{source}'!r}"] if missing else []
        )
        if spec.default is not MISSING:
            when_missing.append(f"values[{name}] = d{i}")
        lines += ["    try:", f"        raw = {read}", '        if raw is None or raw == "":']
        lines += [f"            {line}" for line in when_missing or ["pass"]]
        if spec.transform is None:
            lines += ["        else:", f"            values[{name}] = raw"]
        else:
            scope[f"t{i}"] = spec.transform
            after = (
                [f'errors[{name}] = f"required value missing after transform (from {{raw!r}})"']
                if missing
                else []
            )
            if spec.default is not MISSING:
                after.append(f"values[{name}] = d{i}")
            lines += [
                "        else:",
                f"            value = t{i}(raw)",
                "            if value is None:",
            ]
            lines += [f"                {line}" for line in after or ["pass"]]
            lines += ["            else:", f"                values[{name}] = value"]
        lines += [
            "    except Exception as exc:",
            f"        errors[{name}] = str(exc) or type(exc).__name__",
        ]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<slm-sync mapping>", "exec"), scope, namespace)
    filler: Filler = namespace["fill"]
    return filler


def _field_value(spec: FieldMapping, record: dict[str, Any], errors: dict[str, str]) -> Any:
    try:
        raw = spec.getter(record) if spec.getter is not None else None
        if raw is None or raw == "":
            if spec.default is MISSING and spec.required:
                source = f" ({spec.source})" if spec.source else ""
                errors[spec.name] = f"required value missing{source}"
            return spec.default
        if spec.transform is None:
            return raw
        value = spec.transform(raw)
    # Bad data in one record (a type error in an expression, an unreadable date): report it,
    # never stop the run.
    except Exception as exc:
        errors[spec.name] = str(exc) or type(exc).__name__
        return MISSING
    if value is None:
        if spec.required and spec.default is MISSING:
            errors[spec.name] = f"required value missing after transform (from {raw!r})"
        return spec.default
    return value


def _model_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "record"
        errors.setdefault(name, f"{error['msg']} (got {error.get('input')!r})")
    return errors


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass
class MapResult:
    """The mapped entities of one stream, the records skipped and how many the filter excluded."""

    entity: str
    entities: list[BaseModel] = field(default_factory=list)
    record_ids: list[str] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)
    excluded: int = 0

    def by_id(self, kind: type[T]) -> dict[str, T]:
        """Entities by their source record id, typed (`people.by_id(Person)` for `assemble`)."""
        return dict(zip(self.record_ids, self.of(kind), strict=True))

    def of(self, kind: type[T]) -> tuple[T, ...]:
        """The entities, typed (`result.of(SlaRecord)`)."""
        found = tuple(e for e in self.entities if isinstance(e, kind))
        if len(found) != len(self.entities):
            raise TypeError(f"{self.entity} entities are not {kind.__name__}")
        return found


def map_records(mapping: EntityMapping, records: Iterable[dict[str, Any]]) -> MapResult:
    """Map every record of one stream; skipped records are reported and logged, not raised.

    The entities are kept: collections are spaced out meanwhile (`mapping.allocation`), as in a
    pull, or each whole-heap collection walks the entities mapped so far again."""
    result = MapResult(entity=mapping.entity)
    with spaced_collections():
        for record in records:
            outcome = mapping.apply(record)
            if outcome.entity is not None:
                result.entities.append(outcome.entity)
                result.record_ids.append(outcome.record_id)
            elif outcome.excluded:
                result.excluded += 1
            else:
                result.skipped.append(skipped_record(mapping.entity, outcome))
    return result


def skipped_record(entity: str, outcome: MappedRecord) -> SkippedRecord:
    """The SkippedRecord for a failed outcome (first failing field), logged once."""
    name, reason = next(iter(outcome.errors.items()), (None, "not mapped"))
    if len(outcome.errors) > 1:
        reason += f" (and {len(outcome.errors) - 1} more field(s) failed)"
    skipped = SkippedRecord(
        stream=entity,
        record_id=outcome.record_id or "<no id>",
        field=name,
        reason=reason,
        service_key=_service_of(entity, outcome.values),
    )
    log.warning(
        "mapping.record_skipped",
        stream=entity,
        record_id=skipped.record_id,
        field=name,
        reason=reason,
        service_key=skipped.service_key,
    )
    return skipped


def _service_of(entity: str, values: dict[str, Any]) -> str | None:
    """The service a failed record belongs to, as far as it was mapped (for the review's gap)."""
    if entity == "service":
        key = values.get("key")
    elif entity == "component":
        keys = values.get("service_keys") or ()
        key = next(iter(keys), None) if isinstance(keys, list | tuple) else None
    else:
        key = values.get("service_key")
    return key if isinstance(key, str) and key else None
