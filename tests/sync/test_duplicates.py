"""The duplicate audit: tickets sharing an idempotency key are found, reported and (opt-in)
closed as duplicates of the oldest, never deleted. Over HTTP against the sandbox, Jira Cloud and
ServiceNow as the target."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from config import Settings
from connectors import TicketRef
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.doctor.run import duplicate_tickets
from sync.duplicates import MARGIN, DuplicateAudit
from sync.engine import Engine
from sync.metrics import Metrics
from sync.state import StateStore, open_store

JIRA_AUTH = ("slm-demo", "demo-api-token")
SN_AUTH = ("slm-demo", "demo-password")


pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    running = Sandbox(seed=19, services=4, sla_records=500, index_lag_ms=100).start()
    yield running
    running.stop()


def _settings(site: Sandbox, tmp_path: Path, target: str) -> Settings:
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.2
    settings.sync.target = target
    settings.review.selection = [s.sys_id for s in site.estate.services][:1]
    return settings


def _copy_jira_ticket(site: Sandbox, key: str) -> str:
    """What a person cloning the ticket makes: a new issue with the same labels."""
    created = requests.get(f"{site.jira_url}/__sandbox/created", timeout=5).json()["tickets"]
    original = next(t for t in created if key in t["labels"])
    response = requests.post(
        f"{site.jira_url}/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "SLM"},
                "issuetype": {"name": "Task"},
                "summary": f"CLONE - {original['summary']}",
                "labels": original["labels"],
            }
        },
        auth=JIRA_AUTH,
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _jira_ticket(site: Sandbox, issue: str) -> dict[str, Any]:
    created = requests.get(f"{site.jira_url}/__sandbox/created", timeout=5).json()["tickets"]
    return dict(next(t for t in created if t["key"] == issue))


def _run(settings: Settings, store: StateStore, metrics: Metrics | None = None) -> Any:
    # A person's copy is found by search, which takes it after Jira's index lag.
    time.sleep(settings.jira.index_lag_seconds)
    return Engine.from_settings(settings, store, metrics=metrics).run_once()


def test_a_cloned_jira_ticket_is_reported_by_sync_doctor_and_metrics(
    site: Sandbox, tmp_path: Path
) -> None:
    """A person clones a review ticket (labels included): the next cycle reports the key with
    both tickets in `--json`, `/metrics` and `doctor`; nothing is closed or deleted."""
    settings = _settings(site, tmp_path, "jira")
    store = open_store(settings.sync.resolved_state_url())
    first = _run(settings, store)
    review = next(o for o in first.summary.outcomes if o.key.endswith(":review"))
    assert duplicate_tickets(settings).ok
    clone = _copy_jira_ticket(site, review.key)
    metrics = Metrics()
    second = _run(settings, store, metrics)
    assert second.as_json()["duplicates"] == [
        {"key": review.key, "survivor": review.ticket, "duplicates": [clone]}
    ]
    assert metrics.registry.get_sample_value("slm_sync_duplicate_tickets") == 1
    verdict = duplicate_tickets(settings)
    assert not verdict.ok and clone in verdict.detail and "resolve_duplicates" in verdict.fix
    assert _jira_ticket(site, clone)["status"] != "Done"
    third = _run(settings, store, metrics)  # older than the audit window: still reported
    assert [d.key for d in third.duplicates] == [review.key]
    store.close()


def test_resolving_links_and_closes_the_later_ticket_and_keeps_the_first(
    site: Sandbox, tmp_path: Path
) -> None:
    """With sync.resolve_duplicates the clone is linked to the original as a duplicate, noted
    and closed; the review stays on the original; the next audit finds nothing."""
    settings = _settings(site, tmp_path, "jira")
    store = open_store(settings.sync.resolved_state_url())
    review = next(o for o in _run(settings, store).summary.outcomes if o.key.endswith(":review"))
    clone = _copy_jira_ticket(site, review.key)
    settings.sync.resolve_duplicates = True
    assert _run(settings, store).duplicates == []
    closed = _jira_ticket(site, clone)
    assert closed["status"] == "Done"
    assert any(review.ticket in str(body) for body in closed["comments"])
    assert store.ledger_rows("jira")[review.key].ticket_key == review.ticket
    assert _jira_ticket(site, str(review.ticket))["status"] != "Done"
    assert duplicate_tickets(settings).ok
    store.close()


def test_a_copied_servicenow_task_is_found_and_closed_as_skipped(
    site: Sandbox, tmp_path: Path
) -> None:
    """A record copied with its correlation_id (Insert and Stay) is a duplicate; resolving sets
    it to Closed Skipped with a work note, and the original keeps the review."""
    settings = _settings(site, tmp_path, "servicenow")
    settings.sync.resolve_duplicates = True
    store = open_store(settings.sync.resolved_state_url())
    review = next(o for o in _run(settings, store).summary.outcomes if o.key.endswith(":review"))
    row = store.ledger_rows("servicenow")[review.key]
    copy = requests.post(
        f"{site.servicenow_url}/api/now/table/vtb_task",
        json={
            "short_description": "copy",
            "correlation_id": review.key,
            "correlation_display": "slm-sync",
        },
        auth=SN_AUTH,
        timeout=5,
    ).json()["result"]
    assert _run(settings, store).duplicates == []
    after = requests.get(
        f"{site.servicenow_url}/api/now/table/vtb_task/{copy['sys_id']}",
        params={"sysparm_fields": "state"},
        auth=SN_AUTH,
        timeout=5,
    ).json()["result"]
    assert after["state"] == "7"
    assert store.ledger_rows("servicenow")[review.key].ticket_id == row.ticket_id
    store.close()


class _Listing:
    """A target that only lists: records the audit windows it is asked for."""

    system = "fake"

    def __init__(self) -> None:
        self.asked: list[datetime | None] = []

    def ours_created_since(self, since: datetime | None) -> list[tuple[str, TicketRef, bool]]:
        self.asked.append(since)
        return []

    def retire_duplicate(self, duplicate: TicketRef, survivor: TicketRef) -> None:
        raise AssertionError("nothing to retire")

    def state(self, refs: object, *, comments: bool = False) -> dict[str, object]:
        raise AssertionError("no earlier duplicates to re-check")


def test_each_audit_reads_once_from_the_previous_audit_with_a_margin(
    sqlite_store: StateStore,
) -> None:
    """The first audit reads every ticket of ours; each later one a single listing of those
    created since the previous audit began, less a margin for index lag and clock skew."""
    target = _Listing()
    clock = [datetime(2026, 11, 26, 9, 0, tzinfo=UTC)]
    audit = DuplicateAudit(target, sqlite_store, clock=lambda: clock[0])  # type: ignore[arg-type]
    audit.run()
    clock[0] += timedelta(minutes=15)
    audit.run()
    assert target.asked == [None, datetime(2026, 11, 26, 9, 0, tzinfo=UTC) - MARGIN]
