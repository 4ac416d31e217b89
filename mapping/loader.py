"""Loading `config/mappings/<system>.yaml` into compiled entity mappings.

Every mistake (unknown entity or field, a bad expression, an unknown transform or arg, a field the
review model needs but the file does not map) is collected and raised as one `ConfigError` whose
lines each name the file, the line and the key. File layout (see mapping/README.md):

    version: 1
    system: servicenow
    timezone: UTC                 # for ServiceNow's zone-less date-times
    entities:
      sla_record:
        id: sys_id                # the record id: SkippedRecord and SourceRef name it
        table: task_sla           # SourceRef.table; a literal or a field spec
        filter: "stage != 'cancelled'"
        fields:
          key: sys_id             # shorthand for {source: sys_id}
          start: {source: start_time, transform: datetime, required: true}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from importlib import resources
from pathlib import Path
from typing import Any

from config import ConfigError
from config.yamlfile import KeyPath, YamlDocument, load_yaml
from mapping.engine import (
    MISSING,
    EntityMapping,
    FieldMapping,
    MappedRecord,
    MapResult,
    map_records,
)
from mapping.entities import ENTITIES, ENTITY_MODELS, entity_fields, required_fields
from mapping.expressions import ExpressionError, compile_filter, compile_source
from mapping.transforms import (
    REGISTRY,
    SOURCELESS,
    ArgumentError,
    Transform,
    TransformContext,
    build_transform,
    chain,
    resolve_timezone,
)

SYSTEMS = ("servicenow", "jira")
TOP_KEYS = ("version", "system", "timezone", "entities")
ENTITY_KEYS = ("id", "table", "filter", "fields")
FIELD_KEYS = ("source", "transform", "args", "default", "required")
HINT = "see mapping/README.md for the mapping file format and the transforms"


@dataclass(frozen=True)
class SystemMapping:
    """All entity mappings of one source system, compiled from one file."""

    system: str
    path: Path
    timezone: tzinfo
    entities: Mapping[str, EntityMapping]

    def has(self, entity: str) -> bool:
        return entity in self.entities

    def entity(self, entity: str) -> EntityMapping:
        """The compiled mapping of `entity`; ConfigError if the file does not map it."""
        if entity not in self.entities:
            mapped = ", ".join(self.entities) or "none"
            raise ConfigError(
                f"{self.path}: no mapping for entity {entity!r} (mapped: {mapped})",
                hint=f"add entities.{entity} to the file; entities: {', '.join(ENTITIES)}",
            )
        return self.entities[entity]

    def outcomes(self, entity: str, records: Sequence[dict[str, Any]]) -> list[MappedRecord]:
        """Each raw record's outcome, in order (the pull keeps each row's hash with its entity);
        an entity the file does not map yields nothing."""
        if entity not in self.entities:
            return []
        apply = self.entities[entity].apply
        return [apply(record) for record in records]

    def map(self, entity: str, records: Iterable[dict[str, Any]]) -> MapResult:
        """Map one stream's raw records; an entity the file does not map yields nothing."""
        if entity not in self.entities:
            return MapResult(entity=entity)
        return map_records(self.entities[entity], records)


def shipped_mapping_path(system: str) -> Path:
    """Where the shipped default mapping of `system` lives (inside the `config` package)."""
    with resources.as_file(resources.files("config").joinpath("mappings", f"{system}.yaml")) as p:
        return Path(p)


def load_mappings(system: str, path: Path | None = None) -> SystemMapping:
    """Load and compile the mapping of `system` from `path`, default the shipped one.

    Any system name works with an explicit `path` (connector plugins ship their own mapping).
    """
    if path is None and system not in SYSTEMS:
        raise ConfigError(f"unknown source system {system!r}", hint=f"one of: {', '.join(SYSTEMS)}")
    document = load_yaml(path if path is not None else shipped_mapping_path(system))
    return _Compiler(document, system).compile()


@dataclass
class _Compiler:
    document: YamlDocument
    system: str
    problems: list[str] = field(default_factory=list)
    context: TransformContext = field(default_factory=TransformContext)

    def problem(self, key_path: KeyPath, message: str) -> None:
        dotted = ".".join(str(part) for part in key_path)
        where = self.document.where(key_path)
        self.problems.append(f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}")

    def compile(self) -> SystemMapping:
        data = self.document.data
        if not isinstance(data, dict):
            raise ConfigError(f"{self.document.path}: the top level must be a mapping", hint=HINT)
        self._check_top(data)
        entities: dict[str, EntityMapping] = {}
        raw_entities = data.get("entities")
        if not isinstance(raw_entities, dict):
            self.problem(("entities",), "must be a mapping of entity name -> entity mapping")
            raw_entities = {}
        for name, spec in raw_entities.items():
            compiled = self._entity(str(name), spec)
            if compiled is not None:
                entities[str(name)] = compiled
        if self.problems:
            raise ConfigError("\n".join(self.problems), hint=HINT)
        return SystemMapping(self.system, self.document.path, self.context.timezone, entities)

    def _check_top(self, data: dict[str, Any]) -> None:
        self._unknown_keys((), data, TOP_KEYS)
        if data.get("version", 1) != 1:
            self.problem(("version",), f"unsupported version {data['version']!r} (expected 1)")
        declared = data.get("system", self.system)
        if declared != self.system:
            self.problem(("system",), f"this file maps {declared!r}, not {self.system!r}")
        if "timezone" in data:
            try:
                self.context = TransformContext(resolve_timezone(str(data["timezone"])))
            except ArgumentError as exc:
                self.problem(("timezone",), str(exc))

    def _unknown_keys(self, at: KeyPath, data: dict[str, Any], known: tuple[str, ...]) -> None:
        for key in data:
            if key not in known:
                self.problem((*at, key), f"unknown key {key!r} (known: {', '.join(known)})")

    def _entity(self, name: str, spec: Any) -> EntityMapping | None:
        at: KeyPath = ("entities", name)
        if name not in ENTITY_MODELS:
            self.problem(at, f"unknown entity {name!r} (known: {', '.join(ENTITIES)})")
            return None
        if not isinstance(spec, dict):
            self.problem(at, "must be a mapping with id, fields and optionally table, filter")
            return None
        self._unknown_keys(at, spec, ENTITY_KEYS)
        fields = self._fields(name, spec.get("fields"))
        id_getter, id_fields = self._expression((*at, "id"), spec.get("id"))
        table = self._table(name, spec.get("table", name), (*at, "table"))
        keep = None
        filter_fields: tuple[str, ...] = ()
        if spec.get("filter") is not None:
            try:
                keep, filter_fields = compile_filter(str(spec["filter"]))
            except ExpressionError as exc:
                self.problem((*at, "filter"), str(exc))
        if fields is None or id_getter is None or table is None:
            return None
        used = [*id_fields, *filter_fields, *(table.source_fields or ())]
        for compiled in fields:
            used.extend(compiled.source_fields or ())
        return EntityMapping(
            system=self.system,
            entity=name,
            model=ENTITY_MODELS[name],
            id_getter=id_getter,
            table=table.field,
            fields=tuple(compiled.field for compiled in fields),
            keep=keep,
            source_fields=tuple(dict.fromkeys(used)),
        )

    def _expression(self, at: KeyPath, expression: Any) -> tuple[Any, tuple[str, ...]]:
        if not isinstance(expression, str) or not expression.strip():
            self.problem(at, "must be a JMESPath expression (e.g. sys_id)")
            return None, ()
        try:
            return compile_source(expression)
        except ExpressionError as exc:
            self.problem(at, str(exc))
            return None, ()

    def _table(self, entity: str, spec: Any, at: KeyPath) -> _Compiled | None:
        """SourceRef.table: a literal table name, or a field spec read from the record."""
        if isinstance(spec, str):
            return _Compiled(FieldMapping("table", None, None, None, spec), ())
        return self._field_spec(entity, "table", spec, at)

    def _fields(self, entity: str, specs: Any) -> list[_Compiled] | None:
        at: KeyPath = ("entities", entity, "fields")
        if not isinstance(specs, dict):
            self.problem(at, "must be a mapping of entity field -> source or field spec")
            return None
        known = entity_fields(entity)
        compiled: list[_Compiled] = []
        for name, spec in specs.items():
            if name not in known:
                self.problem(
                    (*at, name), f"{entity} has no field {name!r} (fields: {', '.join(known)})"
                )
                continue
            one = self._field_spec(entity, str(name), spec, (*at, name))
            if one is not None:
                compiled.append(one)
        for name in required_fields(entity):
            if name not in specs:
                self.problem(at, f"{entity}.{name} is required by the review model: map it")
        return compiled if len(compiled) == len(specs) else None

    def _field_spec(self, entity: str, name: str, spec: Any, at: KeyPath) -> _Compiled | None:
        if isinstance(spec, str):
            spec = {"source": spec}
        if not isinstance(spec, dict):
            self.problem(at, "must be a source expression or a mapping with source, transform, ...")
            return None
        self._unknown_keys(at, spec, FIELD_KEYS)
        transform, sourceless = self._transform(at, spec)
        getter, source = None, spec.get("source")
        source_fields: tuple[str, ...] = ()
        if source is not None:
            getter, source_fields = self._expression((*at, "source"), source)
            if getter is None:
                return None
        elif not sourceless:
            self.problem(at, "needs a source (or transform: constant)")
            return None
        default = spec.get("default", MISSING)
        if source is None and transform is not None:  # a constant: computed once, here
            default, transform = transform(None), None
        model_required = name in required_fields(entity)
        required = bool(spec.get("required", model_required))
        if model_required and not required and default is MISSING:
            self.problem(at, f"{entity}.{name} cannot be optional without a default")
        field_mapping = FieldMapping(name, source, getter, transform, default, required)
        return _Compiled(field_mapping, source_fields)

    def _transform(self, at: KeyPath, spec: dict[str, Any]) -> tuple[Transform | None, bool]:
        """The field's transform chain, and whether it needs no source (a constant)."""
        named = spec.get("transform")
        if named is None:
            if "args" in spec:
                self.problem((*at, "args"), "args given without a transform")
            return None, False
        steps = [(named, spec.get("args") or {}, (*at, "transform"))]
        if isinstance(named, list):
            if "args" in spec:
                self.problem((*at, "args"), "with a list of transforms, give args per step")
            steps = [self._step(item, (*at, "transform", i)) for i, item in enumerate(named)]
        built: list[Transform] = []
        for step_name, args, step_at in steps:
            one = self._build(step_name, args, step_at, at)
            if one is not None:
                built.append(one)
        if len(built) != len(steps) or not built:
            return None, False
        return chain(built), steps[0][0] in SOURCELESS

    def _step(self, item: Any, at: KeyPath) -> tuple[Any, Any, KeyPath]:
        if isinstance(item, dict) and len(item) == 1:
            ((step_name, args),) = item.items()
            return step_name, args or {}, at
        return item, {}, at

    def _build(self, name: Any, args: Any, at: KeyPath, field_at: KeyPath) -> Transform | None:
        if not isinstance(name, str) or name not in REGISTRY:
            known = ", ".join(sorted(REGISTRY))
            self.problem(at, f"unknown transform {name!r} (known: {known})")
            return None
        if not isinstance(args, dict):
            self.problem((*field_at, "args"), f"args of {name} must be a mapping")
            return None
        try:
            return build_transform(name, args, self.context)
        except ArgumentError as exc:
            args_at = (*field_at, "args", exc.key) if exc.key else (*field_at, "args")
            if at[-1] != "transform":  # a step in a list: its args live under the step
                args_at = (*at, name, exc.key) if exc.key else (*at, name)
            self.problem(args_at, f"{name}: {exc}")
            return None


@dataclass(frozen=True)
class _Compiled:
    field: FieldMapping
    source_fields: tuple[str, ...] | None
