"""Creates in doubt: a create the target finishes after we stopped waiting is never sent twice.

A fault proxy (sandbox.proxy.FaultProxy) sits in front of the target and holds create requests
past the client's read timeout: either for a fixed delay, or until the next lookup has been
answered (so the lookup right after a timeout sees nothing). On Jira Cloud, Jira Data Center
and ServiceNow, every scenario must end with exactly one ticket per planned key and one chart
per review ticket, and the run that timed out must say so (in doubt, not "created").
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from config import Settings
from sandbox import Sandbox
from sandbox.proxy import FaultProxy
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.state import StateStore, open_store

SN_AUTH = ("slm-demo", "demo-password")
READ_TIMEOUT = 0.5
SETTLE = 4.0  # sync.create_settle_seconds: well beyond the proxy's hold, also on a loaded machine
HOLD = 1.5
TARGETS = ("jira-cloud", "jira-datacenter", "servicenow")


pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def site(target: str) -> Iterator[Sandbox]:
    flavor = "datacenter" if target == "jira-datacenter" else "cloud"
    running = Sandbox(
        seed=13, services=4, sla_records=600, jira_flavor=flavor, index_lag_ms=200
    ).start()
    yield running
    running.stop()


def _settings(site: Sandbox, target: str, proxy: FaultProxy, data_dir: Path) -> Settings:
    settings = demo_settings(site, data_dir)
    settings.servicenow.clock_skew_seconds = 0
    settings.http.read_timeout = READ_TIMEOUT
    settings.sync.create_settle_seconds = SETTLE
    settings.jira.index_lag_seconds = 0.3
    if target == "servicenow":
        settings.sync.target = "servicenow"
        settings.servicenow.url = proxy.url
    else:
        settings.jira.url = proxy.url
    services = [s.sys_id for s in site.estate.services][:2]
    settings.review.selection = services
    return settings


def _upstream(site: Sandbox, target: str) -> str:
    return site.servicenow_url if target == "servicenow" else site.jira_url


def _tickets(site: Sandbox, target: str) -> list[tuple[str, list[str]]]:
    """(idempotency key, attachment names) of every ticket written to the target."""
    if target == "servicenow":
        created = requests.get(f"{site.servicenow_url}/__sandbox/created", timeout=5).json()
        files = Counter[str]()
        for row in created["attachments"]:
            files[row["table_sys_id"]] += 1
        rows = requests.get(
            f"{site.servicenow_url}/api/now/table/vtb_task",
            params={
                "sysparm_query": "correlation_display=slm-sync",
                "sysparm_fields": "sys_id,correlation_id",
                "sysparm_limit": "1000",
            },
            auth=SN_AUTH,
            timeout=5,
        ).json()["result"]
        return [(r["correlation_id"], ["chart"] * files[r["sys_id"]]) for r in rows]
    tickets = requests.get(f"{site.jira_url}/__sandbox/created", timeout=5).json()["tickets"]
    found = []
    for ticket in tickets:
        [key] = [label for label in ticket["labels"] if label.startswith("slm:")]
        found.append((key, [a["filename"] for a in ticket["attachments"]]))
    return found


def _until_settled(engine: Engine, quarantine: float) -> RunResult:
    """Runs until nothing is in doubt or failed (waiting out a quarantine between runs)."""
    for _ in range(6):
        result = engine.run_once()
        counts = result.summary.as_counts()
        if counts["failed"] == 0:
            return result
        time.sleep(quarantine if counts["in_doubt"] else 0.1)
    raise AssertionError(f"never settled: {result.summary.failed}")


def _assert_one_ticket_per_key_and_one_chart_per_review(
    site: Sandbox, target: str, planned: set[str]
) -> None:
    tickets = _tickets(site, target)
    per_key = Counter(key for key, _ in tickets)
    assert {k: n for k, n in per_key.items() if n > 1} == {}, "duplicate tickets"
    assert set(per_key) == planned
    for key, files in tickets:
        expected = 1 if key.endswith(":review") else 0
        assert len(files) == expected, f"{key} carries {len(files)} charts"


def _engine(
    site: Sandbox, target: str, proxy: FaultProxy, tmp_path: Path
) -> tuple[Engine, StateStore]:
    settings = _settings(site, target, proxy, tmp_path / "data")
    store = open_store(settings.sync.resolved_state_url())
    return Engine.from_settings(settings, store), store


def _planned(site: Sandbox, target: str, tmp_path: Path) -> set[str]:
    with FaultProxy(_upstream(site, target)) as proxy:
        settings = _settings(site, target, proxy, tmp_path / "plan")
        store = open_store(settings.sync.resolved_state_url())
        result = Engine.from_settings(settings, store).run_once(dry_run=True)
        store.close()
    return {t.key for t in result.tickets}


def test_a_create_that_lands_after_the_timeout_is_never_sent_again(
    site: Sandbox, target: str, tmp_path: Path
) -> None:
    """Creates held past the read timeout land later: the run reports them in doubt (not
    created), the next run at once sends nothing again, and after the quarantine every
    planned ticket exists once, with its chart once."""
    planned = _planned(site, target, tmp_path)
    with FaultProxy(_upstream(site, target), delay_s=HOLD) as proxy:
        engine, store = _engine(site, target, proxy, tmp_path)
        quarantine = engine.target.quarantine_seconds
        first = engine.run_once()
        counts = first.summary.as_counts()
        assert counts["in_doubt"] >= 1 and counts["failed"] >= counts["in_doubt"]
        assert counts["created"] == 0
        doubtful = [o.key for o in first.summary.outcomes if o.action.value == "in_doubt"]
        engine.run_once()  # inside the quarantine: looked up, never sent again
        assert [proxy.sent(key) for key in doubtful] == [1] * len(doubtful)
        proxy.settle()
        proxy.delay_s = 0
        time.sleep(quarantine)
        _until_settled(engine, quarantine)
        store.close()
    _assert_one_ticket_per_key_and_one_chart_per_review(site, target, planned)
    assert {key: proxy.sent(key) for key in planned} == dict.fromkeys(planned, 1)


def test_a_create_released_right_after_the_lookup_is_not_duplicated(
    site: Sandbox, target: str, tmp_path: Path
) -> None:
    """The proxy lets a timed-out create land just after the next lookup was answered: that
    lookup finds nothing, and the key is still not sent again inside the quarantine."""
    planned = _planned(site, target, tmp_path)
    with FaultProxy(_upstream(site, target), until_lookup=True, hold_max_s=20) as proxy:
        engine, store = _engine(site, target, proxy, tmp_path)
        quarantine = engine.target.quarantine_seconds
        first = engine.run_once()
        doubtful = [o.key for o in first.summary.outcomes if o.action.value == "in_doubt"]
        assert doubtful
        second = engine.run_once().summary.as_counts()  # its lookup releases the held create
        proxy.settle()
        assert [proxy.sent(key) for key in doubtful] == [1] * len(doubtful)
        assert second["in_doubt"] >= 1
        proxy.until_lookup = False
        time.sleep(quarantine)
        _until_settled(engine, quarantine)
        store.close()
    _assert_one_ticket_per_key_and_one_chart_per_review(site, target, planned)
    assert {key: proxy.sent(key) for key in planned} == dict.fromkeys(planned, 1)


def test_the_quarantine_is_derived_from_the_timeouts_and_the_index_lag(
    site: Sandbox, target: str, tmp_path: Path
) -> None:
    """Jira adds its search index lag to the create settle time; ServiceNow reads committed
    rows at once and adds nothing; a long read timeout stretches the settle time."""
    with FaultProxy(_upstream(site, target)) as proxy:
        settings = _settings(site, target, proxy, tmp_path / "data")
        settings.http.read_timeout = 10
        store = open_store(settings.sync.resolved_state_url())
        quarantine: Any = Engine.from_settings(settings, store).target.quarantine_seconds
        store.close()
    lag = 0.0 if target == "servicenow" else settings.jira.index_lag_seconds
    assert quarantine == pytest.approx(max(SETTLE, 2 * 10) + lag)
