"""Work leases: several replicas share one cycle's work, and no unit is done by two at once.

A unit is the pull of the source, or one root ticket with its sub-tasks (the cycle ticket, or a
service's review ticket). A replica takes a unit's lease before working on it, renews it while
working (at every safe point: each page pulled, each reconciler step), and gives it back when
done. A replica that dies simply stops renewing: once its lease runs out, another replica
finishes the unit. The ledger's unique key stays the last line of defence against a duplicate.

Nobody waits a whole interval for a dead replica: a replica waiting for the pull looks at the
lease every `POLL_SECONDS` and takes it the moment it runs out, and an idle daemon's
`LeaseWatch` sleeps until the next lease of another replica runs out, then starts a cycle if
that lease was not renewed or given back. A lease whose holder is a process of this host that
no longer runs is taken at once (`incarnation_gone`). Lease times are the database's clock.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import structlog
from sqlalchemy.exc import SQLAlchemyError

from review import TicketSpec
from sync.state import Lease, StateStore

log = structlog.get_logger("slm_sync.leases")

# A replica waiting for a unit reads its lease this often (one SELECT), so it notices a finished
# pull within this time; a lease that runs out sooner is looked at right when it does.
POLL_SECONDS = 0.5
# Looked at this long after a lease's expiry, so the database clock has surely passed it.
EXPIRY_SLACK = 0.05
# A stretch without a chance to renew longer than this share of the lease is warned about.
WARN_SHARE = 0.5


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


def suggested_lease(stretch: float) -> int:
    """A sync.lease_seconds that renews comfortably across `stretch` seconds of work."""
    return max(10, math.ceil(3 * stretch / 10) * 10)


@dataclass
class WorkLeases:
    """Takes, renews and releases leases for one replica."""

    store: StateStore
    holder: str = field(default_factory=replica_id)
    seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    # Called with the longest stretch so far between chances to renew (the metrics gauge).
    observers: list[Callable[[float], None]] = field(default_factory=list)
    longest_stretch: float = 0.0
    _held: dict[str, float] = field(default_factory=dict)  # unit -> renewed at
    _chance: dict[str, float] = field(default_factory=dict)  # unit -> last safe point
    _warned: float = 0.0

    def acquire(self, unit: str) -> bool:
        """Take `unit` if it is free, given back, run out, or held by a dead local process."""
        current = self.store.lease(unit)
        if current is None or current.holder in ("", self.holder):
            return self.store.acquire_lease(unit, self.holder, self.seconds)
        if not current.running:
            taken = self.store.acquire_lease(unit, self.holder, self.seconds)
            if taken:
                log.info(
                    "lease.taken_over", unit=unit, previous=current.holder, reason="expired",
                    expired_at=current.expires_at, at=current.now,
                )  # fmt: skip
            return taken
        if not incarnation_gone(current.holder, self.holder):
            return False
        taken = self.store.take_over_lease(unit, current.holder, self.holder, self.seconds)
        if taken:
            log.info(
                "lease.taken_over", unit=unit, previous=current.holder, reason="process gone",
                expired_at=current.expires_at, at=current.now,
            )  # fmt: skip
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
    def hold_waiting(self, unit: str, *, stop: threading.Event) -> Iterator[bool]:
        """Like `hold`, but waits while another replica has the unit; False only if stopped.

        For the pull: writing from a half-pulled mirror would be wrong, so a replica waits for
        the pull in progress for as long as its holder keeps renewing, and takes the unit when
        the holder gives it back (then pulls only what is new) or stops renewing (takeover).
        """
        got = self.acquire(unit) or self._wait_for(unit, stop)
        with self._kept(unit, got):
            yield got

    def _wait_for(self, unit: str, stop: threading.Event) -> bool:
        """Wait until we get `unit` (True) or `stop` is set (False), reading its lease cheaply."""
        started = self.clock()
        seen: Lease | None = None
        renewals = 0
        while not stop.is_set():
            current = self.store.lease(unit)
            if current is not None and current.running:
                if seen is None:
                    log.info("lease.waiting", unit=unit, holder=current.holder,
                             expires_in=round(current.remaining, 2))  # fmt: skip
                elif current.holder == seen.holder and current.expires_at > seen.expires_at:
                    renewals += 1
                seen = current
                stop.wait(min(POLL_SECONDS, current.remaining + EXPIRY_SLACK))
            if not stop.is_set() and self.acquire(unit):
                log.info("lease.waited", unit=unit, seconds=round(self.clock() - started, 2),
                         holder=seen.holder if seen else None, renewals=renewals)  # fmt: skip
                return True
            if current is None or not current.running:
                stop.wait(EXPIRY_SLACK)  # another replica was quicker: look again shortly
        return False

    @contextmanager
    def _kept(self, unit: str, got: bool) -> Iterator[None]:
        """Track a lease we got for renewal, and release it when the work is done."""
        if not got:
            yield
            return
        self._held[unit] = self._chance[unit] = self.clock()
        try:
            yield
        finally:
            self._measure(unit)
            self._held.pop(unit, None)
            self._chance.pop(unit, None)
            self.store.release_lease(unit, self.holder)

    def renew_due(self) -> None:
        """Renew held leases past a third of their time; raise LeaseLost if one was taken."""
        for unit, renewed_at in list(self._held.items()):
            self._measure(unit)
            if self.clock() - renewed_at < self.seconds / 3:
                continue
            if not self.store.renew_lease(unit, self.holder, self.seconds):
                log.warning("lease.lost", unit=unit, lease_seconds=self.seconds)
                raise LeaseLost(unit)
            self._held[unit] = self.clock()

    def _measure(self, unit: str) -> None:
        """Note how long `unit` went without a chance to renew; warn if the lease is too short.

        A lease is renewed at the first safe point after a third of it has passed, so a single
        page or apply step that lasts more than about two thirds of it loses the lease; half is
        the warning line.
        """
        now = self.clock()
        stretch = now - self._chance.get(unit, now)
        self._chance[unit] = now
        if stretch > self.longest_stretch:
            self.longest_stretch = stretch
            for observer in self.observers:
                observer(stretch)
        if stretch > WARN_SHARE * self.seconds and stretch > self._warned:
            self._warned = stretch * 1.25  # again only if it gets clearly worse
            log.warning(
                "lease.too_short",
                unit=unit,
                setting="sync.lease_seconds",
                lease_seconds=self.seconds,
                measured_seconds=round(stretch, 2),
                suggested=suggested_lease(stretch),
                hint=f"work on {unit} went {stretch:.1f}s without a chance to renew its lease;"
                f" set sync.lease_seconds to at least {suggested_lease(stretch)}",
            )


@dataclass
class LeaseWatch:
    """Tells an idle replica when another replica's lease ran out without being given back.

    Such a holder died (or hung) mid-work, and its units wait for whoever runs a cycle next.
    `look` returns those leases and how long to sleep before looking again: until the next
    running lease of another replica would run out, and never longer than half a lease, so a
    lease taken meanwhile is seen before it can run out. Leases already run out when a cycle
    starts are that cycle's business (it takes those it plans); they do not wake us again.
    """

    leases: WorkLeases
    _known: set[tuple[str, str, float]] = field(default_factory=set)

    def cycle_starting(self) -> None:
        """Remember the dead leases the coming cycle will see, so they wake nobody later."""
        self._known = {_identity(lease) for lease in self._others() if self._dead(lease)}

    def look(self) -> tuple[list[Lease], float]:
        """(leases that died since the last cycle started, seconds to sleep until next look)."""
        others = self._others()
        dead = [ls for ls in others if self._dead(ls) and _identity(ls) not in self._known]
        running = [ls.remaining + EXPIRY_SLACK for ls in others if ls.running]
        return dead, min([self.leases.seconds / 2, *running])

    def _others(self) -> list[Lease]:
        try:
            held = self.leases.store.held_leases()
        except SQLAlchemyError as error:  # the state store is down: the next cycle will say so
            log.warning("lease.watch_failed", error=str(error).splitlines()[0])
            return []
        return [lease for lease in held if lease.holder != self.leases.holder]

    def _dead(self, lease: Lease) -> bool:
        return not lease.running or incarnation_gone(lease.holder, self.leases.holder)


def _identity(lease: Lease) -> tuple[str, str, float]:
    return (lease.unit, lease.holder, lease.expires_at)
