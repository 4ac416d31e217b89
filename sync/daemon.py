"""`slm-sync run`: a cycle every interval until SIGTERM / SIGINT.

A signal sets the stop event; the engine checks it between pages and between tickets, so the
write in flight finishes and is recorded (every write commits its own transaction), then the
daemon exits 0. Health and metrics follow every cycle; a failing target makes /readyz false and
the loop keeps trying at the next interval (the retry policy already backed off inside).

Webhooks (`enqueue`) wake the daemon at once: every item queued since the last cycle is merged
into one prompted cycle (`Engine.run_prompted`), which reads only the records
they name and rebuilds only their reviews. Items queued while a cycle runs wait for the next
one, which starts as soon as this one ends. Prompted cycles never postpone the poll: the
whole cycle still runs every `interval` (right after a prompted one when it falls due).

Between cycles the daemon runs the whole-heap garbage collection due once in ten cycles
(`mapping.allocation.collect_if_due`), and watches the other replicas' leases (`LeaseWatch`):
when one runs out without being renewed or given back, its holder died mid-work, and a cycle
starts at once to finish its units instead of waiting for the interval.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import FrameType

import structlog

from connectors import ConnectorError
from mapping.allocation import collect_if_due
from sync.engine import Engine, Interrupted
from sync.health import Health
from sync.leases import LeaseWatch
from sync.metrics import Metrics
from sync.portfolio import PortfolioPage
from sync.webhooks import WorkItem

log = structlog.get_logger("slm_sync.daemon")


@dataclass
class Daemon:
    """Runs the engine every `interval` seconds until stopped."""

    engine: Engine
    interval: float
    health: Health
    metrics: Metrics
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    max_cycles: int | None = None
    pending: deque[WorkItem] = field(default_factory=deque)
    watch: LeaseWatch | None = None
    portfolio: PortfolioPage | None = None  # rendered after every successful cycle

    def __post_init__(self) -> None:
        self._next_poll = time.monotonic()  # the first cycle is a whole one
        if self.watch is None and isinstance(self.engine, Engine):
            self.watch = LeaseWatch(self.engine.leases)
            self.engine.leases.observers.append(self.metrics.lease_stretch.set)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT ask for a clean stop (main thread only)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        log.info("daemon.stopping", signal=signal.Signals(number).name)
        self.stop.set()
        self.wake.set()

    def enqueue(self, item: WorkItem) -> None:
        """A webhook's work item: run a cycle now instead of at the next interval."""
        self.pending.append(item)
        self.wake.set()

    def run(self) -> int:
        """Loop until stopped; returns the exit code (0 on a clean stop)."""
        self.engine.stop = self.stop
        cycles = 0
        while not self.stop.is_set():
            self.cycle()
            cycles += 1
            if self.max_cycles is not None and cycles >= self.max_cycles:
                break
            self._idle()
        log.info("daemon.stopped", cycles=cycles)
        return 0

    def _idle(self) -> None:
        """Wait for the poll, a webhook or a stop, or until another replica's lease dies."""
        if self.pending or self.stop.is_set():  # queued while the last cycle ran: it starts now
            return
        # the whole-heap collection due once in ten cycles runs now, not at the next cycle's
        # start (`mapping.allocation`: 0.3 to 0.7 s at 1,000 services)
        collect_if_due()
        deadline = self._next_poll
        while (left := deadline - time.monotonic()) > 0:
            if self.watch is not None:
                dead, pause = self.watch.look()
                if dead:
                    log.info(
                        "daemon.lease_expired",
                        units=sorted(lease.unit for lease in dead),
                        holders=sorted({lease.holder for lease in dead}),
                    )
                    break
                left = min(left, pause)
            if self.wake.wait(left):
                break

    def cycle(self) -> None:
        """The webhooks' prompted cycle if any are queued, then the poll if it is due."""
        self.wake.clear()  # before taking the queue: an item queued after it wakes us again
        woken_by = [self.pending.popleft() for _ in range(len(self.pending))]
        if woken_by:
            log.info("cycle.webhook", items=[f"{i.source}:{i.kind}:{i.key}" for i in woken_by])
            self._run(woken_by)
        if (not woken_by or time.monotonic() >= self._next_poll) and not self.stop.is_set():
            self._next_poll = time.monotonic() + self.interval
            self._run([])

    def _run(self, work: list[WorkItem]) -> None:
        """One engine run with its health and metrics bookkeeping."""
        started = time.monotonic()
        if self.watch is not None:
            self.watch.cycle_starting()
        try:
            result = self.engine.run_prompted(tuple(work)) if work else self.engine.run_once()
        except Interrupted:
            log.info("cycle.interrupted")
            return
        except ConnectorError as error:
            self.health.cycle_finished(False, reachable=False, error=str(error))
            self.metrics.cycles.labels(status="failed").inc()
            log.error("cycle.failed", error=str(error), system=error.system)
            return
        counts = result.summary.as_counts()
        ok = counts["failed"] == 0
        self.health.cycle_finished(True, reachable=True)
        self.metrics.cycles.labels(status="ok" if ok else "partial").inc()
        self.metrics.last_success.set(time.time())
        whole = getattr(result, "targeted", None) is None  # a webhook's build is partial
        if self.portfolio is not None and isinstance(self.engine, Engine) and whole:
            self.portfolio.refresh(self.engine, result)
        log.info("cycle.done", seconds=round(time.monotonic() - started, 2), **counts)
