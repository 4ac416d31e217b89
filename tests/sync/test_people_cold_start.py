"""People on a cold start, end to end (ServiceNow stand-in → engine → Jira Cloud stand-in).

Counted per route (never time): the first run for every service of the estate looks its people
up with one directory listing (`users/search`, 1,000 a page) and searches one by one only for
people the listing cannot show (hidden e-mail, no Jira account, inactive); a restarted process
checks the stored accounts in user/bulk batches of 100; the daemon's next cycle asks Jira about
nobody.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sandbox import Sandbox
from sync.state import open_store
from tests.sync.test_engine_e2e import _engine, _selection, _settings

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    running = Sandbox(seed=5, services=24, sla_records=600, index_lag_ms=0).start()
    yield running
    running.stop()


def _user_calls(site: Sandbox) -> dict[str, int]:
    counts = requests.get(f"{site.jira_url}/__sandbox/requests", timeout=5).json()["by_route"]
    return {route: n for route, n in counts.items() if "/user" in route}


def test_a_cold_start_finds_people_in_one_listing_not_one_search_each(
    site: Sandbox, tmp_path: Path
) -> None:
    selection = _selection(site, tmp_path, count=24)
    settings = _settings(site, tmp_path / "data", selection=selection)
    store = open_store(settings.sync.resolved_state_url())
    requests.post(f"{site.jira_url}/__sandbox/reset", timeout=5)
    first = _engine(settings, store).run_once()
    assert first.summary.as_counts()["failed"] == 0
    used = _user_calls(site)
    people = site.estate.people
    unlisted = [p for p in people if not p.in_jira or p.jira_email_hidden or not p.active]
    assert used.get("GET /rest/api/3/users/search", 0) <= 2
    assert used.get("GET /rest/api/3/user/search", 0) <= len(unlisted) + 1  # + the fallback
    assert sum(used.values()) < len(people) / 2

    requests.post(f"{site.jira_url}/__sandbox/reset", timeout=5)
    engine = _engine(settings, store)  # a restart: the store's people, accounts checked in bulk
    engine.run_once()
    used = _user_calls(site)
    assert set(used) <= {"GET /rest/api/3/user/bulk"}
    assert used.get("GET /rest/api/3/user/bulk", 0) <= len(people) // 100 + 1

    requests.post(f"{site.jira_url}/__sandbox/reset", timeout=5)
    engine.run_once()  # the daemon's next cycle: nobody is asked about
    assert _user_calls(site) == {}
    store.close()
