"""A whole cycle (pull, build, writes) runs with cyclic garbage collections spaced out
(`mapping.allocation`, entered by `Engine._cycle_scope`), not the pull alone: the build's
decoded agreements and attainments were walked by a dozen whole-heap collections in a cold sync
at 1,000 services. The objects from before the cycle are frozen out of collections while it
runs, and the process's settings come back when the cycle ends, failed or not."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

import mapping.allocation
import sync.engine
from mapping.allocation import FREEZES_PER_WALK, GC_YOUNG
from sandbox import Sandbox
from sync.daemon import Daemon
from sync.demo import demo_settings
from sync.engine import Engine
from sync.health import Health
from sync.metrics import Metrics
from sync.state import open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")


def test_the_build_runs_spaced_and_the_settings_come_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int]] = []
    original = sync.engine.build_review
    fail = [False]

    def build_review(*args: Any, **kwargs: Any) -> Any:
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        if fail[0]:
            raise RuntimeError("the build failed")
        return original(*args, **kwargs)

    monkeypatch.setattr(sync.engine, "build_review", build_review)
    before = gc.get_threshold()
    with Sandbox(seed=3, services=3, sla_records=200, index_lag_ms=0) as site:
        settings = demo_settings(site, tmp_path / "data")
        store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            result = Engine.from_settings(settings, store).run_once()
            assert result.summary.as_counts()["created"] and not result.summary.failed
            assert gc.get_threshold() == before and gc.get_freeze_count() == 0
            fail[0] = True
            with pytest.raises(RuntimeError, match="the build failed"):
                Engine.from_settings(settings, store).run_once()
            assert gc.get_threshold() == before and gc.get_freeze_count() == 0
        finally:
            store.close()
    # while building (after the pull, whose own scope had ended): still spaced, and the
    # objects from before the cycle still frozen
    assert len(seen) == 2
    assert all(young >= GC_YOUNG and frozen > 0 for young, frozen in seen)


class _Collections:
    """`gc` for `mapping.allocation`, noting each forced whole-heap collection and whether a
    cycle was running at the time."""

    def __init__(self) -> None:
        self.in_cycle = False
        self.forced: list[bool] = []  # in a cycle?

    def collect(self, *args: Any) -> int:
        self.forced.append(self.in_cycle)
        return gc.collect(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(gc, name)


@pytest.mark.parametrize("daemon", [True, False], ids=["daemon", "cycles alone"])
def test_the_daemon_collects_between_cycles_not_at_a_cycles_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, daemon: bool
) -> None:
    """The whole-heap collection due once in ten cycles (0.6 s at 1,000 services) runs while
    the daemon waits, so that no cycle (a webhook's) starts that much later; cycles run
    without a daemon collect at the start of the eleventh."""
    spy = _Collections()
    monkeypatch.setattr(mapping.allocation, "gc", spy)
    monkeypatch.setattr(mapping.allocation, "_freezes", 0)
    original = Engine.run_once

    def run_once(self: Engine, **kwargs: Any) -> Any:
        spy.in_cycle = True
        try:
            return original(self, **kwargs)
        finally:
            spy.in_cycle = False

    monkeypatch.setattr(Engine, "run_once", run_once)
    with Sandbox(seed=3, services=3, sla_records=200, index_lag_ms=0) as site:
        settings = demo_settings(site, tmp_path / "data")
        store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            engine = Engine.from_settings(settings, store)
            cycles = FREEZES_PER_WALK + 1
            if daemon:
                health = Health(interval_seconds=0)
                Daemon(engine, 0, health, Metrics(), max_cycles=cycles).run()
            else:
                for _ in range(cycles):
                    engine.run_once()
        finally:
            store.close()
    assert spy.forced == [not daemon]  # one, between the tenth and the eleventh cycle
