"""What each stream reads: its table, its field list and its filter, from settings over defaults.

Field lists are explicit (never every column: `task_sla` rows carry 60+). Dot-walked fields
(`task.business_service`) come back as literal keys of the row. Fields an instance does not have
(`u_*` custom fields of our sandbox) are left out of the answer by the Table API, not refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config import ServiceNowSettings
from connectors.base import Stream

KEYSET_FIELDS = ("sys_id", "sys_updated_on")

DEFAULT_FIELDS: Mapping[str, tuple[str, ...]] = {
    Stream.SERVICES: (
        "name", "number", "sys_class_name", "owned_by", "managed_by", "u_business_owner",
        "u_lt_sponsor", "busines_criticality", "support_group", "service_classification",
        "operational_status", "used_for", "short_description", "parent",
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
        "start_condition", "stop_condition", "active", "u_metric", "u_target_percentage",
        "u_applies_to",
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
    Stream.MATERIALS: (
        "number", "short_description", "cmdb_ci", "u_business_service", "business_service",
        "workflow_state", "state", "active", "sys_class_name",
    ),
}  # fmt: skip

# Fields the connector itself needs, added to any configured list.
REQUIRED_FIELDS: Mapping[str, tuple[str, ...]] = {
    Stream.COMPONENTS: ("name",),
    Stream.RELATIONS: ("parent", "child", "type"),
    Stream.SERVICES: ("owned_by", "u_business_owner", "u_lt_sponsor"),
    Stream.CSAT: ("source_table", "source_id"),
    Stream.MATERIALS: ("cmdb_ci", "u_business_service", "business_service"),
}

# Material service link: the first non-empty of these fields names the service.
MATERIAL_SERVICE_FIELDS = ("u_business_service", "business_service", "cmdb_ci")
# Who a service / component record names: the people stream fetches these.
PERSON_REFERENCES = ("owned_by", "managed_by", "u_business_owner", "u_lt_sponsor")


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
        # Listing a table lists the tables extending it: offerings would pass as services.
        admin = f"sys_class_name={name}"
    return StreamSpec(name, fields_for(settings, stream), admin or "")
