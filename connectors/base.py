"""The two seams the sync layer talks through: a source of raw records, a target of tickets.

Sources yield raw records (plain JSON objects as the tool sent them) page by page, each page
with the cursor to commit once the caller has processed it; the mapping layer turns records into
review entities. Targets take `TicketSpec`s and know nothing of SLM logic. The built-in
ServiceNow and Jira connectors implement these Protocols; plugins do too (entry point group
`slm_sync.connectors`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from review import Document, Person, TicketSpec

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
class Page:
    """Records of one request, and the cursor that covers them once they are processed."""

    stream: Stream
    records: Sequence[RawRecord]
    cursor: Cursor | None
    errors: Sequence[str] = ()


@runtime_checkable
class SourceConnector(Protocol):
    """Reads services, agreements, SLA records, CSAT and materials from an ITSM tool."""

    system: str

    def read(
        self, stream: Stream, *, since: Cursor | None = None, until: datetime | None = None
    ) -> Iterator[Page]:
        """Pages of `stream` updated after `since` (all if None) and not after `until`."""
        ...


@dataclass(frozen=True)
class TicketRef:
    """A ticket in the target: its id (issue key / sys_id) and a URL people can open."""

    key: str
    id: str
    url: str | None = None


@dataclass(frozen=True)
class TicketState:
    """What the sync layer reads back from a ticket: status, labels, whether it is done."""

    ref: TicketRef
    status: str
    done: bool
    labels: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LinkedTicket:
    """A ticket people linked to one of ours (an improvement action), and whether it is done."""

    key: str
    title: str
    done: bool
    url: str | None = None


@dataclass(frozen=True)
class CreateResult:
    """Outcome of creating one spec: the ticket, or the error that kept it from existing."""

    spec_key: str
    ref: TicketRef | None
    error: str | None = None


@runtime_checkable
class TargetConnector(Protocol):
    """Creates and keeps review tickets in Jira, ServiceNow or another tool."""

    system: str

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

    def attach(self, ref: TicketRef, filename: str, content: bytes, content_type: str) -> None:
        """Attach a file (the review pack's chart)."""
        ...

    def state(self, refs: Sequence[TicketRef]) -> dict[str, TicketState]:
        """Current status, labels and done-ness of tickets, by ticket key (`TicketRef.key`)."""
        ...

    def linked(self, refs: Sequence[TicketRef]) -> dict[str, tuple[LinkedTicket, ...]]:
        """Tickets linked to ours (Jira issue links, ServiceNow child tasks), by our ticket key."""
        ...

    def unresolved(self, people: Sequence[Person]) -> tuple[Person, ...]:
        """Those of `people` the target has no account for (they become gaps, not failures)."""
        ...
