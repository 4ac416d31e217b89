"""The cycle end to end with JSM as the source: Jira Cloud sandbox's ITSD project in, SLM out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from config import Settings
from review import AttainmentStatus, GapKind, review_ticket_key
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine
from sync.state import StateStore, open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    """A small fresh estate per test (Jira Cloud flavour, JSM project ITSD)."""
    running = Sandbox(seed=11, services=6, sla_records=1500, index_lag_ms=200).start()
    yield running
    running.stop()


def _settings(site: Sandbox, data_dir: Path, selection: list[str] | None = None) -> Settings:
    settings = demo_settings(site, data_dir, source="jira")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.3
    if selection is not None:
        settings.review.selection = selection
    return settings


def _selection(site: Sandbox, tmp_path: Path, count: int = 2) -> list[str]:
    store = open_store(f"sqlite:///{tmp_path / 'probe' / 'state.db'}")
    result = Engine.from_settings(_settings(site, tmp_path / "probe"), store).run_once(dry_run=True)
    store.close()
    return [c.service_key for c in result.build.candidates[:count]]


def _tickets(site: Sandbox) -> dict[str, dict[str, Any]]:
    created = requests.get(f"{site.jira_url}/__sandbox/created", timeout=5).json()["tickets"]
    return {t["key"]: t for t in created}


def _run(settings: Settings, store: StateStore, *, days_ago: int = 0) -> Any:
    engine = Engine.from_settings(settings, store)
    if days_ago:
        engine.clock = lambda: datetime.now(UTC) - timedelta(days=days_ago)
    return engine.run_once()


def test_packs_from_jsm_have_targets_attainment_breaches_and_a_chart(
    site: Sandbox, tmp_path: Path
) -> None:
    """With JSM as the source, each selected pack lists the SLA goals JSM reported for that
    service as targets with measured attainment and breaches, has CSAT, no "no agreement" gap,
    and its review ticket (key hashed: JSM service ids hold "=") carries the chart; breaches
    link to their request."""
    selection = _selection(site, tmp_path)
    settings = _settings(site, tmp_path / "data", selection)
    store = open_store(settings.sync.resolved_state_url())
    result = _run(settings, store)
    store.close()
    assert result.summary.as_counts()["failed"] == 0
    tickets = _tickets(site)
    for service in selection:
        pack = result.build.packs[service]
        measured = [a for a in pack.attainments if a.status is not AttainmentStatus.NO_DATA]
        assert measured and sum(a.measured for a in measured) > 0
        assert sum(a.breached for a in pack.attainments) > 0
        assert GapKind.NO_AGREEMENT not in {g.kind for g in pack.gaps}
        assert pack.csat_responses > 0
        key = review_ticket_key(result.build.cycle.id, service)
        assert key.startswith("slm:h:"), "JSM ids are not label-safe, so the key is hashed"
        review = next(o for o in result.summary.outcomes if o.key == key)
        assert [a["filename"] for a in tickets[review.ticket]["attachments"]] == [pack.chart_name]
        # A breach links to its request's page, its key as the link text.
        assert pack.breaches
        assert all(b.url == f"{site.jira_url}/browse/{b.task_ref}" for b in pack.breaches)


def test_previous_review_with_a_hashed_key_carries_into_the_next_cycle(
    site: Sandbox, tmp_path: Path
) -> None:
    """Last cycle's review (hashed key) is found again for its service: the new pack lists it."""
    selection = _selection(site, tmp_path, count=1)
    settings = _settings(site, tmp_path / "data", selection)
    store = open_store(settings.sync.resolved_state_url())
    earlier = _run(settings, store, days_ago=366)
    now = _run(settings, store)
    store.close()
    assert now.build.cycle.id != earlier.build.cycle.id
    old_key = review_ticket_key(earlier.build.cycle.id, selection[0])
    old_ticket = next(o.ticket for o in earlier.summary.outcomes if o.key == old_key)
    previous = [m for m in now.build.packs[selection[0]].materials if m.key.startswith("review:")]
    assert [(m.kind.value, m.key) for m in previous] == [("previous_review", f"review:{old_key}")]
    assert old_ticket is not None and previous[0].number == old_ticket


def test_service_registry_failure_is_a_gap_and_the_run_goes_on(
    site: Sandbox, tmp_path: Path
) -> None:
    """The service registry answers 5xx: the failure is logged and kept as a skipped read of
    the service stream (a gap), services come from the requests, the tickets are written."""
    selection = _selection(site, tmp_path, count=1)
    knobs = f"{site.jira_url}/__sandbox/knobs"
    route = "/rest/atlassian-connect/1/service-registry"
    requests.post(knobs, json={"faults": f"5xx=1,only={route}"}, timeout=5).raise_for_status()
    settings = _settings(site, tmp_path / "data", selection)
    store = open_store(settings.sync.resolved_state_url())
    try:
        with capture_logs() as logs:
            result = _run(settings, store)
    finally:
        requests.post(knobs, json={"faults": None}, timeout=5)
        store.close()
    assert result.summary.as_counts()["failed"] == 0
    failures = [e for e in logs if e["event"] == "jsm.service_registry_failed"]
    assert len(failures) == 1 and failures[0]["status"] >= 500
    assert result.pulled.skipped["service"] >= 1
    assert selection[0] in {s.key for s in result.build.services}
    pack = result.build.packs[selection[0]]
    assert pack.attainments
    assert any("service registry" in gap.detail for gap in pack.gaps), "the pack says why"
