"""The state store (SQLAlchemy Core + alembic): cursors, records mirror, ledger, cycles, runs,
leases, a source's kept state (the CMDB mirror) and the last built packs. Imports only
`connectors.crashpoints` (the crash tests' kill points).
"""

from __future__ import annotations

from sync.state.store import (
    BuiltPack,
    Lease,
    LedgerRow,
    MirrorRecord,
    PageWrite,
    SlaTally,
    StateStore,
    StepRow,
    StoredTickets,
    TicketRead,
    open_store,
)

__all__ = [
    "BuiltPack",
    "Lease",
    "LedgerRow",
    "MirrorRecord",
    "PageWrite",
    "SlaTally",
    "StateStore",
    "StepRow",
    "StoredTickets",
    "TicketRead",
    "open_store",
]
