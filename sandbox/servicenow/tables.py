"""The slice of ServiceNow's stock schema the stand-in serves: table hierarchy, reference fields,
display fields, choice labels and journal fields.

Tables that are not declared (any `u_*` table a client writes to) are created on first insert,
as an admin could; `READ_ONLY_UNKNOWN` tables answer "Invalid table" like the real instance.
"""

from __future__ import annotations

# child table -> parent table (ServiceNow table extension: listing a parent lists its children).
PARENT: dict[str, str] = {
    "incident": "task",
    "problem": "task",
    "vtb_task": "task",
    "cmdb_ci_service": "cmdb_ci",
    "cmdb_ci_service_business": "cmdb_ci_service",
    "cmdb_ci_service_technical": "cmdb_ci_service",
    "cmdb_ci_service_auto": "cmdb_ci_service",
    "cmdb_ci_service_discovered": "cmdb_ci_service_auto",
    "service_offering": "cmdb_ci_service",
    "cmdb_ci_app_server": "cmdb_ci",
    "cmdb_ci_db_instance": "cmdb_ci",
    "cmdb_ci_server": "cmdb_ci",
    "cmdb_ci_linux_server": "cmdb_ci_server",
    "cmdb_ci_win_server": "cmdb_ci_server",
    "cmdb_ci_lb": "cmdb_ci",
    "cmdb_ci_cloud_service_account": "cmdb_ci",
}
BASE_TABLES = (
    "task",
    "cmdb_ci",
    "cmdb_rel_ci",
    "cmdb_rel_type",
    "sys_user",
    "sys_user_group",
    "sys_user_grmember",
    "contract_sla",
    "task_sla",
    "kb_knowledge",
    "asmt_metric",
    "asmt_metric_result",
    "sys_attachment",
    "sys_journal_field",
    "sys_audit_delete",
    "service_commitment",
    "service_offering_commitment",
    "sys_dictionary",
    "sys_db_object",
)
KNOWN_TABLES = frozenset(BASE_TABLES) | frozenset(PARENT)

# Reference fields per table (inherited by child tables): field -> referenced table.
REFERENCES: dict[str, dict[str, str]] = {
    "task": {
        "assigned_to": "sys_user",
        "assignment_group": "sys_user_group",
        "opened_by": "sys_user",
        "parent": "task",
        "business_service": "cmdb_ci_service",
        "cmdb_ci": "cmdb_ci",
        "service_offering": "service_offering",
    },
    "incident": {"caller_id": "sys_user", "resolved_by": "sys_user", "problem_id": "problem"},
    "cmdb_ci": {
        "owned_by": "sys_user",
        "managed_by": "sys_user",
        "support_group": "sys_user_group",
    },
    "cmdb_ci_service": {"u_business_owner": "sys_user", "u_lt_sponsor": "sys_user"},
    "service_offering": {"parent": "cmdb_ci_service"},
    "cmdb_rel_ci": {"parent": "cmdb_ci", "child": "cmdb_ci", "type": "cmdb_rel_type"},
    "sys_user_group": {"manager": "sys_user"},
    "sys_user_grmember": {"user": "sys_user", "group": "sys_user_group"},
    "contract_sla": {"u_applies_to": "cmdb_ci", "schedule": "cmn_schedule"},
    "task_sla": {"task": "task", "sla": "contract_sla"},
    "service_commitment": {"sla": "contract_sla", "schedule": "cmn_schedule"},
    "service_offering_commitment": {
        "service_offering": "service_offering",
        "service_commitment": "service_commitment",
        "cmdb_ci": "cmdb_ci",
    },
    "sys_db_object": {"super_class": "sys_db_object"},
    "kb_knowledge": {"cmdb_ci": "cmdb_ci", "u_business_service": "cmdb_ci_service"},
    "asmt_metric_result": {"metric": "asmt_metric", "user": "sys_user"},
}
DISPLAY_FIELD: dict[str, str] = {
    "task": "number",
    "cmdb_ci": "name",
    "cmdb_rel_ci": "type",
    "cmdb_rel_type": "name",
    "sys_user": "name",
    "sys_user_group": "name",
    "contract_sla": "name",
    "kb_knowledge": "number",
    "asmt_metric": "name",
    "sys_attachment": "file_name",
    "service_commitment": "name",
    "sys_dictionary": "element",
}
_PRIORITY = {
    "1": "1 - Critical",
    "2": "2 - High",
    "3": "3 - Moderate",
    "4": "4 - Low",
    "5": "5 - Planning",
}
CHOICES: dict[str, dict[str, dict[str, str]]] = {
    "task": {
        "priority": _PRIORITY,
        "state": {
            "1": "Open",
            "2": "Work in Progress",
            "3": "Closed Complete",
            "4": "Closed Incomplete",
            "7": "Closed Skipped",
        },
    },
    "incident": {
        "state": {
            "1": "New",
            "2": "In Progress",
            "3": "On Hold",
            "6": "Resolved",
            "7": "Closed",
            "8": "Canceled",
        },
    },
    "problem": {
        "state": {
            "101": "New",
            "102": "Assess",
            "103": "Root Cause Analysis",
            "104": "Fix in Progress",
            "106": "Resolved",
            "107": "Closed",
        },
    },
    "task_sla": {
        "stage": {
            "in_progress": "In progress",
            "completed": "Completed",
            "cancelled": "Cancelled",
            "paused": "Paused",
            "breached": "Breached",
        },
    },
    "cmdb_ci": {"operational_status": {"1": "Operational", "2": "Non-Operational"}},
    "kb_knowledge": {
        "workflow_state": {"published": "Published", "draft": "Draft", "retired": "Retired"}
    },
}
# Fields every record of a table has, declared because a parent table (task) may have no rows
# of its own; fields seen on stored rows are added to these.
DECLARED_FIELDS: dict[str, frozenset[str]] = {
    "task": frozenset(
        [
            "number",
            "state",
            "active",
            "priority",
            "impact",
            "urgency",
            "short_description",
            "description",
            "correlation_id",
            "correlation_display",
            "assigned_to",
            "assignment_group",
            "watch_list",
            "due_date",
            "parent",
            "opened_at",
            "opened_by",
            "closed_at",
            "business_service",
            "cmdb_ci",
            "service_offering",
            "work_notes",
            "comments",
            "sys_class_name",
            "sys_created_by",
            "sys_updated_by",
        ]
    ),
    "cmdb_ci": frozenset(
        [
            "name",
            "owned_by",
            "managed_by",
            "support_group",
            "operational_status",
            "short_description",
            "sys_class_name",
        ]
    ),
}
# Stock fields of tables whose seeded rows may not show them all.
DECLARED_FIELDS.update(
    {
        "contract_sla": frozenset(
            [
                "name", "type", "target", "duration", "duration_type", "schedule", "collection",
                "condition", "start_condition", "stop_condition", "pause_condition", "active",
                "timezone", "sys_class_name",
            ]
        ),
        "service_commitment": frozenset(
            ["name", "type", "sla", "availability", "schedule", "timezone", "description"]
        ),
        "service_offering_commitment": frozenset(
            ["service_offering", "service_commitment", "cmdb_ci"]
        ),
        "sys_dictionary": frozenset(
            ["name", "element", "internal_type", "reference", "column_label", "active"]
        ),
        "sys_db_object": frozenset(["name", "label", "super_class"]),
        "sys_journal_field": frozenset(
            ["name", "element", "element_id", "value", "sys_created_by"]
        ),
        "sys_audit_delete": frozenset(
            ["tablename", "documentkey", "display_value", "payload", "sys_created_by"]
        ),
    }
)  # fmt: skip
# Stock tables serve no `u_` field unless the instance is "customised" (knob
# servicenow_custom_fields); custom tables (`u_*`) always have theirs.
STOCK_TABLES = KNOWN_TABLES


def is_custom_field(table: str, field: str) -> bool:
    """A `u_` field on a stock table: what only a customised instance has."""
    return field.startswith("u_") and table in STOCK_TABLES


# Journal fields: written as entries, read back as "" unless display values are asked for.
JOURNAL_FIELDS = frozenset({"work_notes", "comments"})
# Prefix of the number field of tables that number their records.
NUMBER_PREFIX = {"task": "TASK", "vtb_task": "VTB", "incident": "INC", "problem": "PRB"}


def lineage(table: str) -> list[str]:
    """The table and its ancestors, nearest first: incident -> [incident, task]."""
    chain = [table]
    while chain[-1] in PARENT:
        chain.append(PARENT[chain[-1]])
    return chain


def is_writable_new_table(table: str) -> bool:
    """Custom tables (`u_*`) appear on first insert, as when an admin created them."""
    return table.startswith("u_") and table.replace("_", "").isalnum()


def reference_table(table: str, field: str) -> str | None:
    for name in lineage(table):
        target = REFERENCES.get(name, {}).get(field)
        if target is not None:
            return target
    return None


def declared_fields(table: str) -> frozenset[str]:
    names: frozenset[str] = frozenset()
    for name in lineage(table):
        names |= DECLARED_FIELDS.get(name, frozenset())
    return names


def display_field(table: str) -> str:
    for name in lineage(table):
        if name in DISPLAY_FIELD:
            return DISPLAY_FIELD[name]
    return "name" if not table.startswith("u_") else "number"


def choice_label(table: str, field: str, value: str) -> str:
    for name in lineage(table):
        labels = CHOICES.get(name, {}).get(field)
        if labels is not None:
            return labels.get(value, value)
    return value


def number_prefix(table: str) -> str | None:
    if table.startswith("u_"):
        return "U" + table[2:6].upper()
    for name in lineage(table):
        if name in NUMBER_PREFIX:
            return NUMBER_PREFIX[name]
    return None
