"""Charts are drawn in a background thread while the cycle writes its tickets (`sync.build.Charts`):
a chart is waited for only where its bytes are needed, so a cold sync's rate-limited Jira writes
and the seconds of CPU its charts take overlap instead of adding up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

import sync.build
import sync.kept_packs
from config import Settings
from sandbox import Sandbox
from sync.build import Charts
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.state import StateStore, open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")
AUTH = ("slm-demo", "demo-api-token")


@dataclass
class Rig:
    """Three services on the stand-ins, opened, with the first two candidates selected."""

    site: Sandbox
    settings: Settings
    store: StateStore
    first: RunResult


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with Sandbox(seed=3, services=3, sla_records=300, index_lag_ms=0) as site:
        settings = demo_settings(site, tmp_path / "data")
        store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            first = Engine.from_settings(settings, store).run_once()
            settings.review.selection = [c.service_key for c in first.build.candidates[:2]]
            yield Rig(site, settings, store, first)
        finally:
            store.close()


def test_a_chart_is_waited_for_only_when_read() -> None:
    gate = threading.Event()
    charts = Charts({"kept": b"old"})
    charts.draw("new", lambda: b"drawn" if gate.wait(5) else b"timed out")
    charts.close()
    # membership, length and iteration do not wait for the drawing
    assert "new" in charts and "kept" in charts and "other" not in charts
    assert len(charts) == 2 and sorted(charts) == ["kept", "new"]
    assert charts.get("kept") == b"old"
    threading.Timer(0.2, gate.set).start()
    assert charts["new"] == b"drawn"  # waits for it
    charts["kept"] = b"replaced"
    del charts["new"]
    assert dict(charts) == {"kept": b"replaced"}


def test_a_chart_that_failed_to_draw_is_logged_and_absent() -> None:
    def broken() -> bytes:
        raise RuntimeError("no font at all")

    charts = Charts()
    charts.draw("svc", broken)
    with capture_logs() as logs:
        charts.settle()
        assert "svc" not in charts and charts.get("svc") is None
    assert [e["event"] for e in logs] == ["chart.draw_failed"]
    assert "no font at all" in logs[0]["error"]


def test_a_failed_cycle_drops_the_charts_still_queued() -> None:
    gate, drawn = threading.Event(), []

    def slow(name: str) -> bytes:
        gate.wait(5)
        drawn.append(name)
        return name.encode()

    charts = Charts()
    for name in ("a", "b", "c"):
        charts.draw(name, lambda name=name: slow(name))  # type: ignore[misc]
    threading.Timer(0.2, gate.set).start()
    charts.settle(drop_queued=True)
    assert drawn == ["a"] and dict(charts) == {"a": b"a"}


def test_the_cycle_creates_its_tickets_while_the_charts_are_still_drawn(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each chart waits (up to 20 s) until the Jira stand-in holds the review tickets: a cycle
    that drew its charts before writing would time out here. The charts still reach their
    tickets, and the packs kept for a restart carry them."""
    site, settings, store = rig.site, rig.settings, rig.store
    draw = sync.build.attainment_chart
    waited: list[bool] = []

    def after_the_creates(*args: Any, **kwargs: Any) -> bytes:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_issues(site)) < 3:
            time.sleep(0.05)  # the cycle ticket and the two reviews
        waited.append(len(_issues(site)) >= 3)
        assert threading.current_thread() is not threading.main_thread()
        return draw(*args, **kwargs)

    monkeypatch.setattr(sync.build, "attainment_chart", after_the_creates)
    result = Engine.from_settings(settings, store).run_once()
    assert waited == [True, True]
    reviews = [o.ticket for o in result.summary.outcomes if o.kind == "review"]
    assert len(reviews) == 2
    for key in reviews:
        issue = requests.get(
            f"{site.jira_url}/rest/api/2/issue/{key}", auth=AUTH, timeout=10
        ).json()
        names = [a["filename"] for a in issue["fields"]["attachment"]]
        assert len(names) == 1 and names[0].endswith(".png")
    kept = store.built_packs(result.build.cycle.id, sync.kept_packs.code_digest())
    assert sorted(k.service_key for k in kept) == sorted(settings.review.selection)
    assert all(k.chart.startswith(b"\x89PNG") for k in kept)


def _issues(site: Sandbox) -> list[str]:
    return list(site.jira.site.store.issues)


def test_a_chart_that_fails_costs_its_review_the_chart_this_cycle_only(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawing one review's chart fails: the cycle still writes every ticket (the other
    review gets its chart), and the next cycle, finding no chart to reuse, draws and
    attaches it."""
    site, settings, store, first = rig.site, rig.settings, rig.store, rig.first
    draw = sync.build.attainment_chart
    doomed = next(s.name for s in first.build.services
                  if s.key == settings.review.selection[0])  # fmt: skip

    def failing(title: str, *args: Any, **kwargs: Any) -> bytes:
        if title.startswith(doomed):
            raise RuntimeError("the renderer broke")
        return draw(title, *args, **kwargs)

    monkeypatch.setattr(sync.build, "attainment_chart", failing)
    engine = Engine.from_settings(settings, store)
    result = engine.run_once()
    assert not result.summary.failed
    attached = _attachments(site, result)
    assert sorted(len(files) for files in attached.values()) == [0, 1]
    monkeypatch.setattr(sync.build, "attainment_chart", draw)
    again = engine.run_once()
    assert all(len(files) == 1 for files in _attachments(site, again).values())


def _attachments(site: Sandbox, result: Any) -> dict[str, list[str]]:
    found = {}
    for outcome in result.summary.outcomes:
        if outcome.kind == "review" and outcome.ticket:
            issue = requests.get(
                f"{site.jira_url}/rest/api/2/issue/{outcome.ticket}", auth=AUTH, timeout=10
            ).json()
            found[outcome.ticket] = [a["filename"] for a in issue["fields"]["attachment"]]
    return found
