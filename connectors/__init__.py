"""Every byte to and from ServiceNow and Jira: clients, paging, cursors, retries, rendering.

Public surface: the source / target Protocols and their value types, the error hierarchy, the
shared retry policy and pacing. Concrete connectors live in submodules and register through
the `slm_sync.connectors` entry point group. Imports `review` and `config` only.
"""

from __future__ import annotations

from connectors.base import (
    AttachedFile,
    CreateResult,
    Cursor,
    IncrementalStates,
    KnownStates,
    LinkedTicket,
    Page,
    RawRecord,
    ReadError,
    RecordLinks,
    SourceConnector,
    SourceState,
    StateRead,
    Stream,
    TargetConnector,
    TicketComment,
    TicketRef,
    TicketState,
    create_settle_seconds,
    outcome_unknown,
    record_links,
)
from connectors.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    OutcomeUnknown,
    RateLimited,
    RecordError,
    RequestRejected,
    TransientError,
)
from connectors.pacing import Pacer
from connectors.retry import RetryEvent, RetryPolicy, observe_retries, set_testing

__all__ = [
    "AttachedFile",
    "AuthError",
    "ConnectorError",
    "CreateResult",
    "Cursor",
    "FatalError",
    "IncrementalStates",
    "KnownStates",
    "LinkedTicket",
    "OutcomeUnknown",
    "Pacer",
    "Page",
    "RateLimited",
    "RawRecord",
    "ReadError",
    "RecordError",
    "RecordLinks",
    "RequestRejected",
    "RetryEvent",
    "RetryPolicy",
    "SourceConnector",
    "SourceState",
    "StateRead",
    "Stream",
    "TargetConnector",
    "TicketComment",
    "TicketRef",
    "TicketState",
    "TransientError",
    "create_settle_seconds",
    "observe_retries",
    "outcome_unknown",
    "record_links",
    "set_testing",
]
