"""The estate's records: plain dataclasses, one per ServiceNow table the stand-ins serve."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class Person:
    sys_id: str
    user_name: str
    first_name: str
    last_name: str
    name: str
    email: str
    title: str
    jira_account_id: str
    jira_name: str
    jira_email_hidden: bool = False
    in_jira: bool = True
    active: bool = True
    sys_updated_on: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    jira_assignable: bool = True  # lacks the Assignable user permission in Jira when False


@dataclass
class Group:
    sys_id: str
    name: str
    manager: str | None
    members: list[str]
    sys_updated_on: datetime


@dataclass
class Service:
    sys_id: str
    number: str
    name: str
    tier: int
    busines_criticality: str
    owner: str | None
    business_owner: str | None
    lt_sponsor: str | None
    support_group: str | None
    sys_updated_on: datetime
    # CSDM class: cmdb_ci_service, cmdb_ci_service_business or cmdb_ci_service_technical
    sys_class_name: str = "cmdb_ci_service"


@dataclass
class ServiceOffering:
    sys_id: str
    name: str
    parent: str
    sys_updated_on: datetime


@dataclass
class Component:
    sys_id: str
    name: str
    sys_class_name: str
    owner: str | None
    support_group: str | None
    sys_updated_on: datetime


@dataclass
class Relation:
    sys_id: str
    parent: str
    child: str
    type: str
    sys_updated_on: datetime


@dataclass
class Agreement:
    """A contract_sla row: a target on a service (SLA) or on a component (OLA / UC)."""

    sys_id: str
    name: str
    type: str  # "SLA" | "OLA" | "Underpinning contract"
    metric: str  # "availability" | "response" | "resolution"
    target_percentage: str
    duration: timedelta | None
    applies_to: str
    applies_to_table: str  # "cmdb_ci_service" | "cmdb_ci"
    priority: str | None
    collection: str
    condition: str
    sys_updated_on: datetime


@dataclass
class Incident:
    sys_id: str
    number: str
    priority: str
    business_service: str
    cmdb_ci: str | None
    caller: str
    assigned_to: str | None
    assignment_group: str | None
    short_description: str
    state: str
    opened_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    made_sla: bool
    sys_created_on: datetime
    sys_updated_on: datetime


@dataclass
class SlaRecord:
    """A task_sla row: one agreement's outcome on one incident."""

    sys_id: str
    task: str
    sla: str
    stage: str
    has_breached: bool
    start_time: datetime
    end_time: datetime | None
    planned_end_time: datetime
    business_percentage: float
    duration: timedelta
    active: bool
    sys_created_on: datetime
    sys_updated_on: datetime


@dataclass
class Problem:
    sys_id: str
    number: str
    business_service: str
    cmdb_ci: str | None
    state: str
    short_description: str
    opened_at: datetime
    sys_updated_on: datetime


@dataclass
class KnowledgeArticle:
    sys_id: str
    number: str
    short_description: str
    cmdb_ci: str | None
    business_service: str | None
    workflow_state: str
    sys_updated_on: datetime


@dataclass
class CsatResult:
    """An asmt_metric_result row: one customer's satisfaction answer about one incident."""

    sys_id: str
    metric: str
    actual_value: str
    source_table: str
    source_id: str
    user: str
    sys_created_on: datetime
    sys_updated_on: datetime


@dataclass
class Estate:
    seed: int
    now: datetime
    people: list[Person] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    offerings: list[ServiceOffering] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    sla_records: list[SlaRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    knowledge: list[KnowledgeArticle] = field(default_factory=list)
    csat: list[CsatResult] = field(default_factory=list)
    csat_metric: str = ""
    deliberate: dict[str, str] = field(default_factory=dict)

    def person(self, sys_id: str) -> Person:
        return next(p for p in self.people if p.sys_id == sys_id)

    def service(self, sys_id: str) -> Service:
        return next(s for s in self.services if s.sys_id == sys_id)
