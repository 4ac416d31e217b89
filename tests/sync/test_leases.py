"""Work leases between replicas: waiting for a renewing holder, taking over a silent one at its
expiry, the idle daemon's lease watch, and the warning when sync.lease_seconds is too short.

Replicas are WorkLeases on separate StateStore connections with holder ids of other hosts, so
only a lease's expiry (never the same-host pid check) can free a unit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from sync.daemon import Daemon
from sync.engine import Engine
from sync.health import Health
from sync.leases import POLL_SECONDS, LeaseWatch, WorkLeases
from sync.metrics import Metrics
from sync.reconcile import ApplySummary
from sync.state import StateStore, open_store

HOST_A = "host-a:101:aaaaaa"
HOST_B = "host-b:202:bbbbbb"


@pytest.fixture
def second(store: StateStore) -> Iterator[StateStore]:
    """Another replica's connection to the same state store."""
    other = open_store(store.engine.url.render_as_string(hide_password=False))
    yield other
    other.close()


def _renewing_holder(leases: WorkLeases, unit: str, renewals: int, log: list[str]) -> None:
    """Hold `unit`, renewing at safe points, until it has been renewed `renewals` times."""
    with leases.hold(unit) as got:
        assert got
        done = 0
        while done < renewals:
            before = leases.store.lease(unit)
            time.sleep(0.05)
            leases.renew_due()
            after = leases.store.lease(unit)
            assert before is not None and after is not None
            done += after.expires_at > before.expires_at
    log.append("released")


def test_waiting_for_a_renewing_holder_never_fails_and_ends_when_it_gives_the_unit_back(
    store: StateStore, second: StateStore
) -> None:
    """A pull held far longer than its lease, renewed all along, is waited for (no takeover,
    no failure); the waiter gets the unit once the holder gives it back."""
    order: list[str] = []
    holder = WorkLeases(second, holder=HOST_A, seconds=0.9)
    thread = threading.Thread(target=_renewing_holder, args=(holder, "pull:sn", 12, order))
    thread.start()
    while second.lease("pull:sn") is None:
        time.sleep(0.01)
    waiter = WorkLeases(store, holder=HOST_B, seconds=0.9)
    with capture_logs() as logs, waiter.hold_waiting("pull:sn", stop=threading.Event()) as got:
        order.append("got" if got else "gave up")
    thread.join(timeout=30)
    assert order == ["released", "got"]
    events = {e["event"]: e for e in logs}
    assert "lease.taken_over" not in events
    waited = events["lease.waited"]
    assert waited["holder"] == HOST_A
    # Each renewal comes a third of a lease after the one before: six seen renewals span more
    # than 1.5 leases, where the waiter used to give up with a FatalError.
    assert waited["renewals"] >= 6


def test_a_holder_that_stops_renewing_is_taken_over_as_soon_as_its_lease_runs_out(
    store: StateStore, second: StateStore
) -> None:
    """The waiter takes the unit right after the silent holder's expiry, never before."""
    assert second.acquire_lease("pull:sn", HOST_A, 0.6)
    waiter = WorkLeases(store, holder=HOST_B, seconds=30)
    with capture_logs() as logs, waiter.hold_waiting("pull:sn", stop=threading.Event()) as got:
        assert got
        held = store.lease("pull:sn")
        assert held is not None and held.holder == HOST_B
    taken = next(e for e in logs if e["event"] == "lease.taken_over")
    assert taken["previous"] == HOST_A and taken["reason"] == "expired"
    assert 0 <= taken["at"] - taken["expired_at"] < POLL_SECONDS + 0.5


def test_a_stop_ends_the_wait_without_the_unit(store: StateStore, second: StateStore) -> None:
    """SIGTERM while waiting for another replica's pull: the wait ends, nothing is taken."""
    assert second.acquire_lease("pull:sn", HOST_A, 60)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    waiter = WorkLeases(store, holder=HOST_B, seconds=60)
    with waiter.hold_waiting("pull:sn", stop=stop) as got:
        assert not got
    held = store.lease("pull:sn")
    assert held is not None and held.holder == HOST_A


def test_the_watch_reports_a_lease_that_ran_out_unreleased_once(
    store: StateStore, second: StateStore
) -> None:
    """An idle replica sleeps until another's lease would run out, then reports it as dead;
    given-back leases and its own are never reported, and a dead lease wakes it only once."""
    assert second.acquire_lease("ticket:done", HOST_A, 60)
    second.release_lease("ticket:done", HOST_A)
    mine = WorkLeases(store, holder=HOST_B, seconds=4)
    assert mine.acquire("ticket:mine")
    watch = LeaseWatch(mine)
    watch.cycle_starting()
    assert second.acquire_lease("ticket:x", HOST_A, 0.4)
    dead, pause = watch.look()
    assert dead == [] and 0 < pause <= 0.5
    time.sleep(pause)
    dead, _ = watch.look()
    assert [(d.unit, d.holder) for d in dead] == [("ticket:x", HOST_A)]
    watch.cycle_starting()
    assert watch.look()[0] == [], "a dead lease the last cycle saw does not wake us again"


def test_a_step_longer_than_half_the_lease_is_warned_with_a_suggested_value(
    sqlite_store: StateStore,
) -> None:
    """Renewal chances 3 s apart under a 10 s lease are fine; a 6 s step is warned about once,
    naming sync.lease_seconds, the measured time and a value to set; the gauge gets it."""
    now = [0.0]
    seen: list[float] = []
    leases = WorkLeases(
        sqlite_store, holder=HOST_B, seconds=10, clock=lambda: now[0], observers=[seen.append]
    )
    with capture_logs() as logs, leases.hold("pull:sn"):
        for step in (3.0, 3.0, 6.0, 6.0):
            now[0] += step
            leases.renew_due()
    warnings = [e for e in logs if e["event"] == "lease.too_short"]
    assert len(warnings) == 1
    assert warnings[0]["setting"] == "sync.lease_seconds"
    assert warnings[0]["lease_seconds"] == 10
    assert warnings[0]["measured_seconds"] == 6.0
    assert warnings[0]["suggested"] == 20
    assert seen == [3.0, 6.0]


@dataclass
class _Result:
    summary: ApplySummary = field(default_factory=ApplySummary)


@dataclass
class _Engine:
    """Stands in for the engine: its first run leaves another replica holding a short lease."""

    other: StateStore
    runs: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run_once(self, *, prompt: bool = False) -> _Result:
        self.runs += 1
        if self.runs == 1:
            assert self.other.acquire_lease("ticket:svc", HOST_A, 0.5)
        return _Result()


def test_an_idle_daemon_starts_a_cycle_when_another_replicas_lease_runs_out(
    store: StateStore, second: StateStore
) -> None:
    """With an hour's interval, the daemon's next cycle comes when a dead replica's lease
    runs out, not an hour later."""
    engine = _Engine(second)
    watch = LeaseWatch(WorkLeases(store, holder=HOST_B, seconds=0.5))
    daemon = Daemon(
        cast(Engine, engine), 3600, Health(interval_seconds=3600), Metrics(),
        max_cycles=2, watch=watch,
    )  # fmt: skip
    loop = threading.Thread(target=daemon.run, daemon=True)
    with capture_logs() as logs:
        loop.start()
        loop.join(timeout=60)
    daemon.stop.set()
    daemon.wake.set()
    assert engine.runs == 2
    woke: dict[str, Any] = next(e for e in logs if e["event"] == "daemon.lease_expired")
    assert woke["units"] == ["ticket:svc"] and woke["holders"] == [HOST_A]
