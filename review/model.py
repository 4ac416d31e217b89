"""The review model: what a Service Level Management review is about, independent of any tool.

Every entity is a frozen pydantic v2 model. Connectors produce raw records, the mapping layer turns
them into these entities, and the review engine reads only these. Identity across systems is a
`SourceRef` (system + table + id); people are matched by email.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from review.document import Document


class Frozen(BaseModel):
    """Base for review entities: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceRef(Frozen):
    """Where a record came from: the system, its table or project, and its id there."""

    system: str
    table: str
    id: str
    url: str | None = None


class Person(Frozen):
    """Someone who holds an SLM role; matched across systems by email."""

    email: str | None = None
    name: str
    source: SourceRef | None = None


class Component(Frozen):
    """A configuration item that helps deliver a service, with its CI owner."""

    key: str
    name: str
    ci_class: str | None = None
    owner: Person | None = None
    depends_on: tuple[str, ...] = ()
    source: SourceRef | None = None


class Service(Frozen):
    """An IT service from the catalog; read-only to us (the catalog process defines services)."""

    key: str
    name: str
    tier: int | None = None
    owner: Person | None = Field(default=None, description="Service Level Manager (service owner)")
    business_owner: Person | None = None
    lt_sponsor: Person | None = None
    components: tuple[Component, ...] = ()
    source: SourceRef | None = None


class AgreementKind(StrEnum):
    """The kind of agreement a target comes from."""

    SLA = "SLA"  # with the customer, for the service
    OLA = "OLA"  # with an internal team, for a component
    UC = "UC"  # underpinning contract with a supplier, for a component


class Metric(StrEnum):
    """What an agreement measures."""

    AVAILABILITY = "availability"
    RESPONSE = "response"
    RESOLUTION = "resolution"


class Agreement(Frozen):
    """A measurable target: e.g. 95 % of P1 incidents resolved within 4 hours."""

    key: str
    name: str
    kind: AgreementKind
    metric: Metric
    target_percent: float = Field(ge=0, le=100)
    window: timedelta | None = Field(default=None, description="time limit for time metrics")
    priority: str | None = None
    service_key: str | None = None
    component_key: str | None = None
    provider: str | None = None
    source: SourceRef | None = None


class SlaRecord(Frozen):
    """One task's outcome against one agreement: met or breached, and how long it took."""

    key: str
    agreement_key: str
    task_ref: str
    service_key: str | None = None
    priority: str | None = None
    start: datetime
    stop: datetime | None = None
    breached: bool
    elapsed: timedelta | None = None
    source: SourceRef | None = None


class CsatResponse(Frozen):
    """One customer satisfaction answer about a service (scale 1-5)."""

    key: str
    service_key: str | None = None
    task_ref: str | None = None
    score: float = Field(ge=0)
    scale_max: float = 5
    answered_at: datetime
    source: SourceRef | None = None


class MaterialKind(StrEnum):
    """Existing material a review incorporates instead of asking for new content."""

    KNOWLEDGE = "knowledge"
    PROBLEM = "problem"
    PREVIOUS_REVIEW = "previous_review"
    PREVIOUS_DECISION = "previous_decision"  # recorded in the previous review's tickets
    IMPROVEMENT = "improvement"


class Material(Frozen):
    """An existing artifact linked to a service: knowledge article, problem, earlier review.

    `key` identifies it (a sys_id, `review:<ticket key>`): never shown. People know it by its
    `number` (KB0010001, PRB0040001, SLM-12), the text of its link in the pack."""

    key: str
    kind: MaterialKind
    title: str
    number: str | None = Field(
        default=None, description="the number people know it by (KB…, PRB…, an issue key)"
    )
    service_key: str | None = None
    url: str | None = None
    open: bool = True
    source: SourceRef | None = None


class ReviewPeriod(Frozen):
    """The time span a review covers (start inclusive, end exclusive)."""

    start: datetime
    end: datetime


class AttainmentStatus(StrEnum):
    """How an agreement fared over the period."""

    MET = "met"
    AT_RISK = "at_risk"
    MISSED = "missed"
    NO_DATA = "no_data"


class MonthlyAttainment(Frozen):
    """Attainment within one calendar month (YYYY-MM)."""

    month: str
    measured: int
    breached: int
    attainment: float | None


class Breach(Frozen):
    """One breached SLA record, kept among an agreement's worst for the review pack."""

    record_key: str
    agreement_key: str
    task_ref: str
    priority: str | None = None
    start: datetime
    elapsed: timedelta | None = None
    overrun: float | None = Field(default=None, description="elapsed / window; 1.5 = 50 % late")
    url: str | None = None
    source: SourceRef | None = Field(
        default=None, description="the SLA record it comes from (its link is built from it)"
    )


class Attainment(Frozen):
    """Measured level of one agreement over a review period, against its target."""

    agreement_key: str
    period: ReviewPeriod
    measured: int
    breached: int
    attainment: float | None = Field(description="share of records met, 0..1; None without data")
    target_percent: float
    status: AttainmentStatus
    monthly: tuple[MonthlyAttainment, ...] = ()
    top_breaching_priorities: tuple[tuple[str, int], ...] = ()
    worst_months: tuple[str, ...] = Field(
        default=(), description="months below target, worst first"
    )
    trend: float | None = Field(
        default=None, description="least-squares slope of monthly attainment, points per month"
    )
    top_breaches: tuple[Breach, ...] = ()


class FeasibilityFinding(Frozen):
    """A service target stricter than its components' agreements allow (seed policy)."""

    service_key: str
    agreement_key: str
    metric: Metric
    service_target: str
    achievable: str
    components: tuple[str, ...]
    explanation: str


class GapKind(StrEnum):
    """Kinds of missing content a review lists instead of failing (seed policy)."""

    NO_OWNER = "no_owner"
    NO_BUSINESS_OWNER = "no_business_owner"
    NO_LT_SPONSOR = "no_lt_sponsor"
    NO_AGREEMENT = "no_agreement"
    TARGET_WITHOUT_DATA = "target_without_data"
    COMPONENT_WITHOUT_OLA = "component_without_ola"
    NO_CSAT = "no_csat"
    UNRESOLVED_PERSON = "unresolved_person"
    SKIPPED_RECORDS = "skipped_records"
    UNKNOWN_SELECTION = "unknown_selection"


class Gap(Frozen):
    """Something a review is missing; listed in the pack, never a reason to stop."""

    kind: GapKind
    service_key: str | None = None
    subject: str
    detail: str


class Decision(Frozen):
    """A decision people recorded in a review's tickets: a comment starting `Decision:`
    (`Decision (policy):` marks a change to the process policies)."""

    text: str
    author: str = Field(description="who wrote it: a name, else the e-mail or id the target shows")
    recorded: datetime
    policy: bool = False
    ticket: str = Field(description="the ticket (key) it was recorded in")
    url: str | None = None
    service_key: str | None = None


class Invitee(Frozen):
    """Someone the review meeting invites, with the parts they play ("SLM Process Owner (A/R)")."""

    person: Person
    roles: tuple[str, ...] = ()


class Attendance(Frozen):
    """One responsible person of "Participate in service review": attended once their own
    sub-task is done."""

    person: Person
    attended: bool


class Meeting(Frozen):
    """The review meeting as the tickets record it: date, who is invited and who attended, and
    what was decided (decisions, improvement tickets linked to the review)."""

    scheduled: date | None = Field(
        default=None, description="the meeting date, once the scheduling sub-task is done"
    )
    schedule_activity: str = "Schedule service review"
    participate_activity: str = "Participate in service review"
    invitees: tuple[Invitee, ...] = ()
    attendance: tuple[Attendance, ...] = ()
    decisions: tuple[Decision, ...] = ()
    improvements: tuple[Material, ...] = ()
    frozen: bool = Field(
        default=False,
        description="the participation sub-task is done: this is the pack's last version",
    )


class ReviewPack(Frozen):
    """Everything one service review shows: the review ticket's body and attachments."""

    service: Service
    period: ReviewPeriod
    attainments: tuple[Attainment, ...] = ()
    findings: tuple[FeasibilityFinding, ...] = ()
    gaps: tuple[Gap, ...] = ()
    materials: tuple[Material, ...] = ()
    csat_average: float | None = None
    csat_responses: int = 0
    breaches: tuple[Breach, ...] = ()
    chart_name: str | None = Field(default=None, description="file name of the attainment chart")
    meeting: Meeting | None = Field(
        default=None, description="the review meeting (review tickets; a local report has none)"
    )
    body: Document


class SkippedRecord(Frozen):
    """A source record the mapping could not turn into an entity; a gap in the affected review."""

    stream: str
    record_id: str
    field: str | None = None
    reason: str
    service_key: str | None = None


class TicketKind(StrEnum):
    """The tickets slm-sync keeps in the target."""

    CYCLE = "cycle"
    REVIEW = "review"
    ACTIVITY = "activity"


class TicketSpec(Frozen):
    """What a ticket in the target must be; the sync layer makes the target match it."""

    key: str = Field(description="idempotency key, e.g. slm:2026:payroll:participate")
    parent_key: str | None = None
    kind: TicketKind
    title: str
    body: Document
    assignee: Person | None = None
    accountable: Person | None = None
    consulted: tuple[Person, ...] = ()
    informed: tuple[Person, ...] = ()
    due: date | None = None
    labels: tuple[str, ...] = ()
    service_key: str | None = Field(
        default=None,
        exclude=True,  # not something the ticket shows: the spec hash stays as it was
        description="the service of a review ticket or its sub-tasks; its key may be hashed",
    )
    # Who an activity sub-task is for, so closing it can be read back per person (attendance).
    # Not shown on the ticket (the assignee is): excluded like service_key, the spec hash holds.
    activity_id: str | None = Field(
        default=None,
        exclude=True,
        description="the RACI activity of a sub-task (its key may be hashed)",
    )
    responsible_roles: tuple[str, ...] = Field(
        default=(),
        exclude=True,
        description="RACI role ids whose R part the assignee does on this sub-task; with several "
        "R people each has their own sub-task",
    )
