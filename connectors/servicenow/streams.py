"""What each stream reads: its table, its field list and its filter, from settings over defaults.

Field lists are explicit (never every column: `task_sla` rows carry 60+) and name only fields a
stock instance has (no `u_*`): the Table API leaves unknown fields out of its answer without an
error, and a query naming one matches every row, or none with
`glide.invalid_query.returns_no_rows`. Dot-walked fields (`task.business_service`) come back as
literal keys of the row. `connector_reads` lists every table and field the connector reads, for
`slm-sync doctor`'s schema check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config import ServiceNowSettings
from connectors.base import Stream

KEYSET_FIELDS = ("sys_id", "sys_updated_on")

DEFAULT_FIELDS: Mapping[str, tuple[str, ...]] = {
    Stream.SERVICES: (
        "name", "number", "sys_class_name", "owned_by", "managed_by", "busines_criticality",
        "support_group", "service_classification", "operational_status", "used_for",
        "short_description",
    ),
    Stream.COMPONENTS: (
        "name", "sys_class_name", "owned_by", "managed_by", "support_group",
        "operational_status", "short_description",
    ),
    Stream.RELATIONS: ("parent", "child", "type"),
    Stream.PEOPLE: (
        "user_name", "name", "first_name", "last_name", "email", "title", "active",
    ),
    Stream.AGREEMENTS: (
        "name", "type", "target", "duration", "schedule", "collection", "condition",
        "start_condition", "stop_condition", "active",
    ),
    Stream.SLA_RECORDS: (
        "task", "sla", "stage", "has_breached", "start_time", "end_time", "planned_end_time",
        "business_percentage", "duration", "business_duration", "active",
        "task.business_service", "task.cmdb_ci", "task.priority", "task.number", "sla.name",
    ),
    Stream.CSAT: (
        "metric", "actual_value", "string_value", "source_table", "source_id", "user",
        "sys_created_on",
    ),
    Stream.MATERIALS: ("number", "short_description", "cmdb_ci", "active", "sys_class_name"),
}  # fmt: skip

# Fields the connector itself needs, added to any configured list.
REQUIRED_FIELDS: Mapping[str, tuple[str, ...]] = {
    Stream.COMPONENTS: ("name",),
    Stream.RELATIONS: ("parent", "child", "type"),
    Stream.SERVICES: ("owned_by",),
    Stream.CSAT: ("source_table", "source_id"),
    Stream.MATERIALS: ("cmdb_ci",),
    Stream.AGREEMENTS: ("type",),
}

# CSDM's service classes (cmdb_ci_service and the business and technical services extending
# it). Left out: offerings (service_offering, they refine a service) and application services
# (cmdb_ci_service_auto and its extensions such as cmdb_ci_service_discovered: service
# instances, reached as components by the dependency walk).
SERVICE_CLASSES = ("cmdb_ci_service", "cmdb_ci_service_business", "cmdb_ci_service_technical")

# Materials: knowledge names its CI (kb_knowledge.cmdb_ci, "Configuration item"); problems
# their service (task.business_service) or CI. Extra fields and the service link per kind.
MATERIAL_FIELDS: Mapping[str, tuple[str, ...]] = {
    "knowledge": ("workflow_state",),
    "problem": ("business_service", "state"),
}
MATERIAL_SERVICE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "knowledge": ("cmdb_ci",),
    "problem": ("business_service", "cmdb_ci"),
}
# Only materials linked to a service or CI.
MATERIAL_LINKS = {
    "knowledge": "cmdb_ciISNOTEMPTY",
    "problem": "business_serviceISNOTEMPTY^ORcmdb_ciISNOTEMPTY",
}
# Who a service / component record names: the people stream fetches these (plus the `u_`
# fields an admin adds to `servicenow.fields.service` / `.component`, see `person_references`).
PERSON_REFERENCES = ("owned_by", "managed_by")

# Service Portfolio Management: an SLA-type commitment names its SLA definition (`sla`) and,
# for availability, its percentage (`availability`); offerings carry commitments through
# service_offering_commitment, and an offering's `parent` is its service.
COMMITMENT_TABLE = "service_commitment"
COMMITMENT_FIELDS = ("sys_id", "name", "type", "sla", "availability")
OFFERING_COMMITMENT_TABLE = "service_offering_commitment"
OFFERING_COMMITMENT_FIELDS = ("sys_id", "service_offering", "service_commitment", "cmdb_ci")
OFFERING_TABLE = "service_offering"
OFFERING_FIELDS = ("sys_id", "parent")
RELATION_TYPE_FIELDS = ("sys_id", "name")
TASK_SERVICE_FIELDS = ("sys_id", "business_service", "cmdb_ci")


@dataclass(frozen=True)
class StreamSpec:
    """Table, fields and admin filter of one table read."""

    table: str
    fields: tuple[str, ...]
    filter: str = ""


def fields_for(settings: ServiceNowSettings, stream: Stream) -> tuple[str, ...]:
    """The stream's field list: configured or default, plus keyset and required fields."""
    configured = settings.fields.get(stream.value)
    chosen = tuple(configured) if configured else DEFAULT_FIELDS[stream]
    names = (*KEYSET_FIELDS, *chosen, *REQUIRED_FIELDS.get(stream, ()))
    return tuple(dict.fromkeys(names))


def spec_for(settings: ServiceNowSettings, stream: Stream, table: str | None = None) -> StreamSpec:
    """The spec of a plain table stream (`table` for streams that read several tables)."""
    tables = settings.tables
    default_table = {
        Stream.SERVICES: tables.services,
        Stream.COMPONENTS: tables.components,
        Stream.RELATIONS: tables.relations,
        Stream.PEOPLE: tables.people,
        Stream.AGREEMENTS: tables.agreements,
        Stream.SLA_RECORDS: tables.sla_records,
        Stream.CSAT: tables.csat,
    }.get(stream, "")
    name = table or default_table
    admin = settings.filters.get(stream.value)
    if admin is None and stream is Stream.SERVICES:
        admin = default_service_filter(name)
    return StreamSpec(name, fields_for(settings, stream), admin or "")


def default_service_filter(table: str) -> str:
    """Listing a table lists the tables extending it: offerings would pass as services."""
    if table == "cmdb_ci_service":
        return "sys_class_nameIN" + ",".join(SERVICE_CLASSES)
    return f"sys_class_name={table}"


def material_spec(settings: ServiceNowSettings, kind: str, table: str) -> StreamSpec:
    """The spec of one material table (knowledge or problem)."""
    base = fields_for(settings, Stream.MATERIALS)
    fields = (*base, *MATERIAL_FIELDS[kind], *MATERIAL_SERVICE_FIELDS[kind])
    admin = settings.filters.get("material", "")
    return StreamSpec(table, tuple(dict.fromkeys(fields)), admin)


def person_references(settings: ServiceNowSettings) -> tuple[str, ...]:
    """Fields of services and components naming people: stock ones and configured `u_` ones."""
    configured = [*settings.fields.get("service", []), *settings.fields.get("component", [])]
    custom = [name for name in configured if name.startswith("u_")]
    return tuple(dict.fromkeys((*PERSON_REFERENCES, *custom)))


def connector_reads(settings: ServiceNowSettings) -> dict[str, tuple[str, ...]]:
    """Every table the source reads and the fields its field lists and queries name.

    SPM tables are optional (read where the plugin is active); `doctor` reports them apart.
    """
    tables = settings.tables
    reads: dict[str, list[str]] = {}

    def add(table: str, fields: tuple[str, ...]) -> None:
        reads.setdefault(table, []).extend(f for f in fields if "." not in f)

    for stream in (Stream.SERVICES, Stream.RELATIONS, Stream.AGREEMENTS, Stream.SLA_RECORDS,
                   Stream.CSAT, Stream.COMPONENTS, Stream.PEOPLE):  # fmt: skip
        add(spec_for(settings, stream).table, fields_for(settings, stream))
    add(tables.services, ("sys_class_name",))
    add(tables.people, ("sys_id",))
    add("cmdb_rel_type", RELATION_TYPE_FIELDS)
    add("task", TASK_SERVICE_FIELDS)
    for kind, table in (("knowledge", tables.knowledge), ("problem", tables.problems)):
        add(table, material_spec(settings, kind, table).fields)
    dotted = [f for f in fields_for(settings, Stream.SLA_RECORDS) if f.startswith("task.")]
    add("task", tuple(f.removeprefix("task.") for f in dotted))
    return {table: tuple(dict.fromkeys(fields)) for table, fields in reads.items()}


SPM_READS: Mapping[str, tuple[str, ...]] = {
    COMMITMENT_TABLE: COMMITMENT_FIELDS,
    OFFERING_COMMITMENT_TABLE: OFFERING_COMMITMENT_FIELDS,
    OFFERING_TABLE: OFFERING_FIELDS,
}
