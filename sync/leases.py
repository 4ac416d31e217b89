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


def incarnation_gone(holder: str, me: str) -> bool:
    """Whether `holder` was a process on this host that no longer runs.

    Same host and pid as ours but another holder id: an earlier incarnation (a restarted
    container is pid 1 again). Another pid on this host: gone if it no longer exists. Another
    host: unknown, so its lease must expire.
    """
    try:
        host, pid_text, _ = holder.rsplit(":", 2)
        my_host, my_pid, _ = me.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != my_host or holder == me:
        return False
    if pid_text == my_pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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

    def acquire(self, unit: str) -> bool:
        """Take `unit`; a lease left by a dead process on this host is taken over at once."""
        if self.store.acquire_lease(unit, self.holder, self.seconds):
            return True
        current = self.store.lease_holder(unit)
        if current is None or not incarnation_gone(current[0], self.holder):
            return False
        taken = self.store.take_over_lease(unit, current[0], self.holder, self.seconds)
        if taken:
            log.info("lease.taken_over", unit=unit, previous=current[0])
        return taken

    @contextmanager
    def hold(self, unit: str) -> Iterator[bool]:
        """Yields whether we got `unit`; releases it afterwards."""
        got = self.acquire(unit)
        if not got:
            log.info("lease.busy", unit=unit)
        with self._kept(unit, got):
            yield got

    @contextmanager
    def hold_waiting(
        self, unit: str, *, stop: Callable[[], bool], poll: float = 0.5
    ) -> Iterator[bool]:
        """Like `hold`, but waits (up to 1.5 lease times) while another replica has the unit.

        For the pull: writing from a half-pulled mirror would be wrong, so a replica waits for the
        pull in progress (or for a dead replica's pull lease to expire) and then pulls itself,
        which reads only what is new.
        """
        deadline = self.clock() + 1.5 * self.seconds
        got = self.acquire(unit)
        while not got and not stop() and self.clock() <= deadline:
            time.sleep(poll)
            got = self.acquire(unit)
        with self._kept(unit, got):
            yield got

    @contextmanager
    def _kept(self, unit: str, got: bool) -> Iterator[None]:
        """Track a lease we got for renewal, and release it when the work is done."""
        if not got:
            yield
            return
        self._held[unit] = self.clock()
        try:
            yield
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
