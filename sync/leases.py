"""Work leases: several replicas share one cycle's work, and no unit is done by two at once.

A unit is the pull of the source, or one root ticket with its sub-tasks (the cycle ticket, or a
service's review ticket). A replica takes a unit's lease before working on it, renews it while
working (at every safe point of the reconciler), and gives it back when done. A replica that
dies simply stops renewing: its lease expires and another replica finishes the unit. The
ledger's unique key stays the last line of defence against a duplicate.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import structlog

from review import TicketSpec
from sync.state import StateStore

log = structlog.get_logger("slm_sync.leases")


class LeaseLost(Exception):
    """Our lease expired and another replica took the unit: stop working on it at once."""


def replica_id() -> str:
    """This process's name in the leases table: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def units(specs: Sequence[TicketSpec]) -> dict[str, list[TicketSpec]]:
    """Specs grouped by their root ticket (parents first within each unit, plan order kept)."""
    by_key = {s.key: s for s in specs}
    grouped: dict[str, list[TicketSpec]] = {}
    for spec in specs:
        root = spec
        while root.parent_key in by_key:
            root = by_key[root.parent_key or ""]
        grouped.setdefault(f"ticket:{root.key}", []).append(spec)
    return grouped


@dataclass
class WorkLeases:
    """Takes, renews and releases leases for one replica."""

    store: StateStore
    holder: str = field(default_factory=replica_id)
    seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _held: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def hold(self, unit: str) -> Iterator[bool]:
        """Yields whether we got `unit`; releases it afterwards."""
        if not self.store.acquire_lease(unit, self.holder, self.seconds):
            log.info("lease.busy", unit=unit)
            yield False
            return
        self._held[unit] = self.clock()
        try:
            yield True
        finally:
            self._held.pop(unit, None)
            self.store.release_lease(unit, self.holder)

    def renew_due(self) -> None:
        """Renew held leases past a third of their time; raise LeaseLost if one was taken."""
        for unit, renewed_at in list(self._held.items()):
            if self.clock() - renewed_at < self.seconds / 3:
                continue
            if not self.store.renew_lease(unit, self.holder, self.seconds):
                log.warning("lease.lost", unit=unit)
                raise LeaseLost(unit)
            self._held[unit] = self.clock()
