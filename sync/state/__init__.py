"""The state store (SQLAlchemy Core + alembic): cursors, records mirror, ledger, cycles, runs."""

from __future__ import annotations

from sync.state.store import LedgerRow, MirrorRecord, StateStore, open_store

__all__ = ["LedgerRow", "MirrorRecord", "StateStore", "open_store"]
