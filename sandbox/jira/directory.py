"""The Jira stand-in's configuration: users, fields, issue types, statuses, projects, link types.

Field ids are fixed so connector configs and tests can name them:

| id | name | schema custom |
|---|---|---|
| customfield_10030 | Time to resolution | com.atlassian.servicedesk:sd-sla-field |
| customfield_10031 | Time to first response | com.atlassian.servicedesk:sd-sla-field |
| customfield_10032 | Satisfaction | com.atlassian.servicedesk:sd-request-feedback |
| customfield_10033 | Affected services | (Cloud) service-entity-field-cftype; (DC) a multi-select |
| customfield_10034 | Accountable | userpicker |
| customfield_10035 | Review notes | textarea (ADF on REST v3) |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIELD_ACCOUNTABLE",
    "FIELD_AFFECTED_SERVICES",
    "FIELD_REVIEW_NOTES",
    "FIELD_SATISFACTION",
    "FIELD_TIME_TO_FIRST_RESPONSE",
    "FIELD_TIME_TO_RESOLUTION",
    "LINK_TYPES",
    "PERSON_PASSWORD",
    "STATUSES",
    "TEXT_FIELDS",
    "FieldDef",
    "IssueTypeDef",
    "JiraUser",
    "ProjectDef",
    "StatusDef",
    "field_defs",
    "issue_types",
    "projects",
]

FIELD_TIME_TO_RESOLUTION = "customfield_10030"
FIELD_TIME_TO_FIRST_RESPONSE = "customfield_10031"
FIELD_SATISFACTION = "customfield_10032"
FIELD_AFFECTED_SERVICES = "customfield_10033"
FIELD_ACCOUNTABLE = "customfield_10034"
FIELD_REVIEW_NOTES = "customfield_10035"

# People act as themselves with Basic auth `<their e-mail>:PERSON_PASSWORD` (Data Center: their
# user name works too); any other credentials act as the integration account (see app.py).
PERSON_PASSWORD = "sandbox-person"

# Fields whose value is rich text: ADF on REST v3, wiki markup on REST v2.
TEXT_FIELDS = frozenset({"description", "environment", FIELD_REVIEW_NOTES})


@dataclass(frozen=True)
class JiraUser:
    """A Jira account; ``account_id`` is the internal identity on both flavours."""

    account_id: str
    name: str  # Data Center user name
    key: str  # Data Center user key (JIRAUSER...)
    display_name: str
    email: str
    email_hidden: bool = False
    active: bool = True
    time_zone: str = "Europe/Berlin"
    assignable: bool = True  # holds the Assignable user permission in the projects


@dataclass(frozen=True)
class FieldDef:
    id: str
    name: str
    schema: dict[str, Any]
    settable: bool = True
    clause_names: tuple[str, ...] = ()

    @property
    def custom(self) -> bool:
        return self.id.startswith("customfield_")


@dataclass(frozen=True)
class IssueTypeDef:
    id: str
    name: str
    subtask: bool
    hierarchy_level: int
    description: str


@dataclass(frozen=True)
class StatusDef:
    id: str
    name: str
    category_id: int
    category_key: str
    category_name: str
    color: str


@dataclass(frozen=True)
class ProjectDef:
    id: str
    key: str
    name: str
    type_key: str  # "software" | "service_desk" | "business"
    issuetype_ids: tuple[str, ...]


STATUSES = (
    StatusDef("10000", "To Do", 2, "new", "To Do", "blue-gray"),
    StatusDef("3", "In Progress", 4, "indeterminate", "In Progress", "yellow"),
    StatusDef("10001", "Done", 3, "done", "Done", "green"),
)

# (id, name, inward, outward), as a fresh Jira site has them.
LINK_TYPES = (
    ("10000", "Blocks", "is blocked by", "blocks"),
    ("10001", "Cloners", "is cloned by", "clones"),
    ("10002", "Duplicate", "is duplicated by", "duplicates"),
    ("10003", "Relates", "relates to", "relates to"),
)


def issue_types(subtask_name: str) -> tuple[IssueTypeDef, ...]:
    """The site's issue types; ``subtask_name`` lets a site localize the sub-task type."""
    return (
        IssueTypeDef("10000", "Epic", False, 1, "A big piece of work with child work items."),
        IssueTypeDef("10001", "Task", False, 0, "A small, distinct piece of work."),
        IssueTypeDef("10002", subtask_name, True, -1, "A small piece of work within a task."),
        IssueTypeDef("10003", "Service Request", False, 0, "Request a service from IT."),
    )


def projects() -> tuple[ProjectDef, ...]:
    return (
        ProjectDef(
            "10000", "SLM", "Service Level Management", "software", ("10001", "10002", "10000")
        ),
        ProjectDef("10001", "ITSD", "IT Service Desk", "service_desk", ("10003", "10002")),
    )


def _system(field_id: str, name: str, type_: str, **extra: Any) -> FieldDef:
    schema = {"type": type_, "system": field_id, **extra}
    return FieldDef(field_id, name, schema, clause_names=(field_id,))


def _custom(
    field_id: str, name: str, type_: str, custom: str, *, settable: bool = True, **extra: Any
) -> FieldDef:
    number = int(field_id.rsplit("_", 1)[1])
    schema = {"type": type_, "custom": custom, "customId": number, **extra}
    return FieldDef(field_id, name, schema, settable, (f"cf[{number}]", name))


def field_defs(flavor: str) -> tuple[FieldDef, ...]:
    """System fields the connectors touch, then the JSM and SLM custom fields."""
    service_field = (
        _custom(
            FIELD_AFFECTED_SERVICES,
            "Affected services",
            "array",
            "com.atlassian.jira.plugins.service-entity:service-entity-field-cftype",
            items="service-entity-field-cftype",
        )
        if flavor == "cloud"
        else _custom(
            FIELD_AFFECTED_SERVICES,
            "Affected services",
            "array",
            "com.atlassian.jira.plugin.system.customfieldtypes:multiselect",
            items="option",
        )
    )
    system = (
        _system("summary", "Summary", "string"),
        _system("description", "Description", "string"),
        _system("environment", "Environment", "string"),
        _system("issuetype", "Issue Type", "issuetype"),
        _system("project", "Project", "project"),
        _system("parent", "Parent", "issuelink"),
        _system("labels", "Labels", "array", items="string"),
        _system("assignee", "Assignee", "user"),
        _system("reporter", "Reporter", "user"),
        _system("duedate", "Due date", "date"),
        _system("priority", "Priority", "priority"),
        _system("status", "Status", "status"),
        FieldDef(
            "resolution",
            "Resolution",
            {"type": "resolution", "system": "resolution"},
            False,
            ("resolution",),
        ),
        FieldDef(
            "resolutiondate",
            "Resolved",
            {"type": "datetime", "system": "resolutiondate"},
            False,
            ("resolutiondate", "resolved"),
        ),
        _system("created", "Created", "datetime"),
        _system("updated", "Updated", "datetime"),
        _system("comment", "Comment", "comments-page"),
        _system("attachment", "Attachment", "array", items="attachment"),
        _system("issuelinks", "Linked Issues", "array", items="issuelinks"),
        _system("subtasks", "Sub-tasks", "array", items="issuelinks"),
        _system("watches", "Watchers", "watches"),
    )
    sla_type = "com.atlassian.servicedesk:sd-sla-field"
    custom = (
        _custom(
            FIELD_TIME_TO_RESOLUTION,
            "Time to resolution",
            "sd-servicelevelagreement",
            sla_type,
            settable=False,
        ),
        _custom(
            FIELD_TIME_TO_FIRST_RESPONSE,
            "Time to first response",
            "sd-servicelevelagreement",
            sla_type,
            settable=False,
        ),
        _custom(
            FIELD_SATISFACTION,
            "Satisfaction",
            "sd-feedback",
            "com.atlassian.servicedesk:sd-request-feedback",
            settable=False,
        ),
        service_field,
        _custom(
            FIELD_ACCOUNTABLE,
            "Accountable",
            "user",
            "com.atlassian.jira.plugin.system.customfieldtypes:userpicker",
        ),
        _custom(
            FIELD_REVIEW_NOTES,
            "Review notes",
            "string",
            "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
        ),
    )
    return system + custom
