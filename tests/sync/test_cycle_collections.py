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

import sync.engine
from mapping.allocation import GC_YOUNG
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine
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
