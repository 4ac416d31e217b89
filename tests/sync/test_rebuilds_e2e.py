"""Nothing rebuilt that did not change: a review whose inputs are the same as last cycle keeps
its pack and chart (no pack built, no chart rendered); a new SLA record rebuilds exactly its
service's review. ServiceNow stand-in → pull → mirror → review build, Jira stand-in as target."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sync.build
from review import SlaRecord
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine
from sync.state import open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    running = Sandbox(seed=11, services=10, sla_records=1500, index_lag_ms=0).start()
    yield running
    running.stop()


def test_idle_cycles_rebuild_nothing_and_one_new_record_rebuilds_its_service(
    site: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    charts: list[str] = []
    render = sync.build.attainment_chart

    def counting_chart(title: str, *args: Any, **kwargs: Any) -> bytes:
        charts.append(title)
        return render(title, *args, **kwargs)

    monkeypatch.setattr(sync.build, "attainment_chart", counting_chart)
    probe = demo_settings(site, tmp_path / "probe")
    probe.servicenow.clock_skew_seconds = 0
    probe_store = open_store(probe.sync.resolved_state_url())
    dry = Engine.from_settings(probe, probe_store).run_once(dry_run=True)
    probe_store.close()
    selection = [s.key for s in dry.build.services]
    assert len(selection) >= 8

    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0
    settings.review.selection = selection
    store = open_store(settings.sync.resolved_state_url())
    engine = Engine.from_settings(settings, store)
    first = engine.run_once()
    assert sorted(first.build.rebuilt) == sorted(selection)
    engine.run_once()  # the tickets the first cycle created are read back now
    charts.clear()
    idle = engine.run_once()
    assert idle.build.rebuilt == []
    assert charts == []
    assert set(idle.build.packs) == set(selection) and set(idle.build.charts) == set(selection)

    # One new SLA record of a selected service, decided inside the review period.
    period = idle.build.cycle.period
    counted = next(
        SlaRecord.model_validate(r.body)
        for r in store.mirrored("sla_record")
        if r.service_key in selection
        and r.month is not None
        and (record := SlaRecord.model_validate(r.body)).stop is not None
        and period.start <= record.stop < period.end
    )
    original = next(r for r in site.servicenow.store.rows("task_sla") if r["sys_id"] == counted.key)
    fields = {k: v for k, v in original.items() if not k.startswith("sys_")}
    site.servicenow.insert("task_sla", sys_id="f" * 28 + "0001", **fields)
    after = engine.run_once()
    assert after.build.rebuilt == [counted.service_key]
    assert len(charts) == 1
    before = idle.build.attainments
    changed = [k for k, a in after.build.attainments.items() if before.get(k) != a]
    assert changed == [counted.agreement_key]
    store.close()
