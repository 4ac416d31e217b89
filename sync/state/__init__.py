"""The state store (SQLAlchemy Core + alembic): cursors, records mirror, ledger, cycles, runs,
leases. Imports only `connectors.crashpoints` (the crash tests' kill points).
"""

from __future__ import annotations

from sync.state.store import (
    Lease,
    LedgerRow,
    MirrorRecord,
    SlaTally,
    StateStore,
    StepRow,
    StoredTickets,
    TicketRead,
    open_store,
)

__all__ = [
    "Lease",
    "LedgerRow",
    "MirrorRecord",
    "SlaTally",
    "StateStore",
    "StepRow",
    "StoredTickets",
    "TicketRead",
    "open_store",
]
