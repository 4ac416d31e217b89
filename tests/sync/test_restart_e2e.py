"""A restart costs what an idle cycle costs: ServiceNow stand-in → pull → build → Jira stand-in.

After a first sync (and the cycle that reads its tickets back), a new engine on a new store
object over the same database (a restarted daemon, the next `slm-sync sync --once`) makes no
more ServiceNow requests than an idle cycle of the engine that stayed up, renders no pack and no
chart, and changes no ticket; it still reads the review tickets (the tickets are the record).
On SQLite and PostgreSQL. Counted (requests, rebuilds, charts), never timed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sync.build
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.kept_packs import code_digest
from sync.state import StateStore, open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    running = Sandbox(seed=11, services=8, sla_records=600, index_lag_ms=0).start()
    yield running
    running.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _requests(site: Sandbox) -> tuple[int, int]:
    """ServiceNow requests and Jira searches (ticket state read back) since the last reset;
    the counters are reset."""
    assert site.jira_harness is not None
    searches = site.jira_harness.requests()["by_route"].get("POST /rest/api/3/search/jql", 0)
    counts = int(site.servicenow_harness.requests()["total"]), int(searches)
    site.servicenow_harness.reset()
    site.jira_harness.reset()
    return counts


def _kept(store: StateStore, result: RunResult) -> list[str]:
    return [p.service_key for p in store.built_packs(result.build.cycle.id, code_digest())]


def _unchanged(result: RunResult) -> bool:
    counts = result.summary.as_counts()
    return counts["created"] == counts["updated"] == counts["failed"] == 0


def test_a_restarted_engine_rebuilds_nothing_and_reads_no_more_than_an_idle_cycle(
    site: Sandbox, tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    charts: list[str] = []
    render = sync.build.attainment_chart

    def counting_chart(title: str, *args: Any, **kwargs: Any) -> bytes:
        charts.append(title)
        return render(title, *args, **kwargs)

    monkeypatch.setattr(sync.build, "attainment_chart", counting_chart)
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0
    settings.review.selection = [s.sys_id for s in site.estate.services]
    store = open_store(url)
    engine = Engine.from_settings(settings, store)
    first = engine.run_once()
    assert first.build.rebuilt
    engine.run_once()  # the tickets the first cycle created are read back now
    _requests(site)
    charts.clear()
    idle = engine.run_once()
    assert idle.build.rebuilt == [] and charts == [] and _unchanged(idle)
    idle_servicenow, idle_searches = _requests(site)
    store.close()

    restarted_store = open_store(url)
    assert len(_kept(restarted_store, first)) == len(first.build.rebuilt)
    restarted = Engine.from_settings(settings, restarted_store).run_once()
    servicenow, searches = _requests(site)
    assert restarted.build.rebuilt == [] and charts == []
    assert set(restarted.build.packs) == set(idle.build.packs)
    assert _unchanged(restarted)
    assert servicenow <= idle_servicenow, (servicenow, idle_servicenow)
    # the tickets are still read, as in the idle cycle: what people did there counts
    assert searches == idle_searches > 0
    restarted_store.close()


def test_packs_kept_by_other_code_are_built_again(site: Sandbox, tmp_path: Path) -> None:
    """Kept packs are reused only if this code built them: after an upgrade each selected
    review is built again, once, and its ticket does not change for it."""
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0
    settings.review.selection = [s.sys_id for s in site.estate.services][:3]
    url = f"sqlite:///{tmp_path / 'data' / 'state.db'}"
    store = open_store(url)
    engine = Engine.from_settings(settings, store)
    engine.run_once()
    engine.run_once()
    store.close()
    restarted_store = open_store(url)
    with restarted_store.engine.begin() as connection:  # as another slm-sync version kept them
        connection.exec_driver_sql("UPDATE built_packs SET code = 'older'")
    restarted = Engine.from_settings(settings, restarted_store).run_once()
    assert sorted(restarted.build.rebuilt) == sorted(settings.review.selection)
    assert _unchanged(restarted)
    restarted_store.close()
