"""The two seams the sync layer talks through: a source of raw records, a target of tickets.

Sources yield raw records (plain JSON objects as the tool sent them) page by page, each page
with the cursor to commit once the caller has processed it; the mapping layer turns records into
review entities. Targets take `TicketSpec`s and know nothing of SLM logic. The built-in
ServiceNow and Jira connectors implement these Protocols; plugins do too (entry point group
`slm_sync.connectors`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from config import Settings
from connectors.errors import ConnectorError, RateLimited, TransientError
from review import Document, Person, SourceRef, TicketSpec

RawRecord = Mapping[str, Any]


class Stream(StrEnum):
    """The kinds of raw records a source can be asked for (one mapping entity each)."""

    SERVICES = "service"
    COMPONENTS = "component"
    RELATIONS = "relation"
    PEOPLE = "person"
    AGREEMENTS = "agreement"
    SLA_RECORDS = "sla_record"
    CSAT = "csat_response"
    MATERIALS = "material"


@dataclass(frozen=True, order=True)
class Cursor:
    """Where an incremental read stopped: last update time and id (keyset, ties broken by id)."""

    updated: str
    id: str = ""


@dataclass(frozen=True)
class ReadError:
    """A record a read could not deliver: its table, its id, why, and the services it affects.

    `service_ids` are the source's ids of the affected services (empty: none can be named);
    the sync layer lists the problem in those services' review packs, else cycle-wide.
    """

    table: str
    record_id: str
    reason: str
    service_ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.table} record {self.record_id}: {self.reason}"


@dataclass(frozen=True)
class Page:
    """Records of one request, and the cursor that covers them once they are processed.

    `errors`: what the request could not deliver, as `ReadError`s (plain strings from older
    plugins are accepted and reported without a record).
    """

    stream: Stream
    records: Sequence[RawRecord]
    cursor: Cursor | None
    errors: Sequence[ReadError | str] = ()


@runtime_checkable
class SourceConnector(Protocol):
    """Reads services, agreements, SLA records, CSAT and materials from an ITSM tool.

    Optional (see `record_links`): `record_url(ref: SourceRef) -> str | None`, where people
    open a mapped record; the packs link breaches, materials, services and components there."""

    system: str

    def read(
        self, stream: Stream, *, since: Cursor | None = None, until: datetime | None = None
    ) -> Iterator[Page]:
        """Pages of `stream` updated after `since` (all if None) and not after `until`."""
        ...


# What a source keeps between cycles (e.g. the ServiceNow CMDB mirror), as items the state
# store saves by change: kind -> key -> JSON-able body. Sources that keep state offer
# `kept_state() -> SourceState` (the state now), `restore_state(state) -> bool` (False: not
# usable, e.g. saved under other settings) and `forget_state()` (start cold); see `sync.pull`.
SourceState = dict[str, dict[str, Any]]


# Where people open a source record (a ServiceNow form, a Jira issue page), None if nowhere.
RecordLinks = Callable[[SourceRef], str | None]


def record_links(source: object) -> RecordLinks | None:
    """The source's `record_url(ref)`, for the links of review packs; None for sources (such
    as older plugins) that have none, whose records are then shown without links."""
    found = getattr(source, "record_url", None)
    return found if callable(found) else None


@dataclass(frozen=True)
class TicketRef:
    """A ticket in the target: its id (issue key / sys_id) and a URL people can open."""

    key: str
    id: str
    url: str | None = None


@dataclass(frozen=True)
class TicketComment:
    """A comment / work note people wrote on a ticket, as plain text.

    `author`: the writer's e-mail where the target shows it, else their display name or id.
    `created`: when it was written (aware). `ours`: written by slm-sync itself (its own notes
    are never read back as people's decisions or selections).
    """

    author: str
    created: datetime
    text: str
    ours: bool = False


@dataclass(frozen=True)
class TicketState:
    """What the sync layer reads back from a ticket: status, labels, whether it is done, and
    what people recorded in it (the tickets are the record of the process).

    `due`: the ticket's due date as people keep it (Jira `duedate`, ServiceNow `due_date`).
    `resolved`: when it was done (Jira `resolutiondate`, ServiceNow `closed_at`), None if open.
    `assignee`: e-mail (else name / id) of the person it is assigned to, "" if nobody.
    `comments`: people's comments / work notes, oldest first (only where asked for:
    `state(refs, comments=True)`).
    `links`: the tickets people linked to it (its improvement actions), where the read that
    found it also read those (Jira's `read_states`); None where it did not (ask `linked()`).
    """

    ref: TicketRef
    status: str
    done: bool
    labels: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    due: date | None = None
    resolved: datetime | None = None
    assignee: str = ""
    comments: tuple[TicketComment, ...] = ()
    links: tuple[LinkedTicket, ...] | None = None


@dataclass(frozen=True)
class LinkedTicket:
    """A ticket people linked to one of ours (an improvement action), and whether it is done."""

    key: str
    title: str
    done: bool
    url: str | None = None
    id: str = ""  # the tool's id for it, where known (Jira: a moved issue keeps it, not its key)


@dataclass(frozen=True)
class AttachedFile:
    """A file already on a ticket: its name, size, and how to read its bytes to compare them."""

    name: str
    size: int
    read: Callable[[], bytes]
    id: str = ""  # the target's attachment id (to remove an older version of our chart)


@dataclass(frozen=True)
class CreateResult:
    """Outcome of creating one spec: the ticket, or the error that kept it from existing.

    `in_doubt`: the request was sent and its outcome is unknown (timeout, reset, 5xx, an answer
    that cannot be read): the ticket may exist, or appear later. Never create it again until a
    lookup after the target's `quarantine_seconds` proves it absent.
    """

    spec_key: str
    ref: TicketRef | None
    error: str | None = None
    in_doubt: bool = False


def outcome_unknown(error: ConnectorError) -> bool:
    """Whether a failed create may still have been applied by the tool (see `CreateResult`).

    Refusals (4xx) and requests the tool never acted on (429, connection refused) are not in
    doubt; a transient failure after the request left is.
    """
    if not isinstance(error, TransientError) or isinstance(error, RateLimited):
        return False
    return bool(getattr(error, "sent", True))


def create_settle_seconds(settings: Settings) -> float:
    """How long after we stopped waiting a create may still land in the tool.

    The larger of `sync.create_settle_seconds` (default 60 s: ServiceNow's REST transaction
    quota and Jira's request timeout end longer requests) and twice `http.read_timeout`. A
    target with a lagging search index adds its lag to make its `quarantine_seconds`.
    """
    return max(settings.sync.create_settle_seconds, 2 * settings.http.read_timeout)


@dataclass
class KnownStates:
    """The ticket states the sync layer holds this cycle (its ticket book): a target's `state()`
    answers from them, reads only the tickets not among them, and answers `gone` tickets (a
    full read no longer found them) as absent without a read."""

    states: dict[str, TicketState]
    gone: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class StateRead:
    """One read of our tickets: the states changed since the mark (every ticket of ours on a
    full read), by ticket key, and the mark the next incremental read starts from.

    `linked`: tickets linked to ours that changed since the mark (an improvement action done),
    by key: a link's status lives on the other ticket, whose change does not touch ours.
    `unlinked`: linked tickets that no longer exist (deleted): their links are gone."""

    states: dict[str, TicketState]
    mark: str
    linked: dict[str, LinkedTicket] = field(default_factory=dict)
    unlinked: frozenset[str] = frozenset()


@runtime_checkable
class IncrementalStates(Protocol):
    """A target that reads the states of its tickets changed since a mark, in one search."""

    known_states: KnownStates | None

    def read_states(self, mark: str | None, margin_seconds: float) -> StateRead:
        """Every ticket of ours (labelled / marked as ours) changed since `mark` and
        `margin_seconds` before it (search index lag), with comments; all of them if `mark`
        is None (a full read)."""
        ...


@runtime_checkable
class TargetConnector(Protocol):
    """Creates and keeps review tickets in Jira, ServiceNow or another tool."""

    system: str
    quarantine_seconds: float  # a create in doubt is not sent again before this has passed

    def find(self, keys: Sequence[str], *, recent: bool = False) -> dict[str, TicketRef]:
        """Tickets already carrying these idempotency keys (label / correlation_id).

        `recent`: the tickets may have been created moments ago (a create whose outcome is
        unknown), so a target with a lagging search index must wait for it before saying no.
        """
        ...

    def create(
        self, specs: Sequence[TicketSpec], parents: Mapping[str, TicketRef]
    ) -> list[CreateResult]:
        """Create tickets (in bulk where the tool allows), one result per spec, in order."""
        ...

    def update(self, ref: TicketRef, spec: TicketSpec) -> None:
        """Make the ticket match `spec` (only changed fields are sent)."""
        ...

    def comment(self, ref: TicketRef, body: Document) -> None:
        """Add a comment / work note."""
        ...

    def attach(self, ref: TicketRef, filename: str, content: bytes, content_type: str) -> str:
        """Attach a file (the review pack's chart); the new attachment's id ("" if the tool
        did not say)."""
        ...

    def state(self, refs: Sequence[TicketRef], *, comments: bool = False) -> dict[str, TicketState]:
        """Current status, labels, done-ness, due / resolved dates and assignee of tickets, by
        ticket key (`TicketRef.key`); with `comments`, people's comments too (a costlier read:
        ask only for the tickets whose comments matter this cycle)."""
        ...

    def linked(self, refs: Sequence[TicketRef]) -> dict[str, tuple[LinkedTicket, ...]]:
        """Tickets linked to ours (Jira issue links, ServiceNow child tasks), by our ticket key."""
        ...

    def unresolved(self, people: Sequence[Person]) -> tuple[Person, ...]:
        """Those of `people` the target has no account for (they become gaps, not failures)."""
        ...
