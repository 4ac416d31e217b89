"""Every R person gets their own Participate sub-task in Jira, created once, over real HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from review import Person
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine
from sync.state import open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    """A small seeded estate (Jira Cloud flavour as target, ServiceNow as source)."""
    running = Sandbox(seed=11, services=4, sla_records=400, index_lag_ms=200).start()
    yield running
    running.stop()


def _created(site: Sandbox) -> list[dict[str, Any]]:
    tickets = requests.get(f"{site.jira_url}/__sandbox/created", timeout=5).json()["tickets"]
    assert isinstance(tickets, list)
    return tickets


def _email(person: Person | None) -> str:
    assert person is not None and person.email
    return person.email.lower()


def test_each_r_person_gets_one_participate_subtask_and_a_rerun_adds_none(
    site: Sandbox, tmp_path: Path
) -> None:
    """Process owner, service owner and every CI owner each get one assigned Participate
    sub-task under the review ticket (the first on the old key); the second run writes nothing."""
    settings = demo_settings(site, tmp_path / "probe")
    probe = open_store(settings.sync.resolved_state_url())
    services = Engine.from_settings(settings, probe).run_once(dry_run=True).build.services
    probe.close()
    chosen = next(s for s in services if s.owner and len({c.owner for c in s.components}) > 1)
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.3
    settings.review.selection = [chosen.key]
    store = open_store(settings.sync.resolved_state_url())
    first = Engine.from_settings(settings, store).run_once()
    service = next(s for s in first.build.services if s.key == chosen.key)
    base = f"slm:{first.build.cycle.id}:{service.key}:participate_review"
    parts = [t for t in first.tickets if t.activity_id == "participate_review"]
    expected = {
        _email(settings.review.roles.slm_process_owner),
        _email(service.owner),
        *(_email(c.owner) for c in service.components if c.owner is not None),
    }
    assert len(expected) >= 3, "the seeded service has CI owners besides its owner"
    assert parts[0].key == base
    assert sorted(_email(t.assignee) for t in parts) == sorted(expected)
    in_jira = Counter(label for t in _created(site) for label in t["labels"])
    assert all(in_jira[t.key] == 1 for t in parts)
    ledger = store.ledger_rows("jira")
    review = ledger[f"slm:{first.build.cycle.id}:{service.key}:review"].ticket_key
    by_key = {t["key"]: t for t in _created(site)}
    assert all(by_key[ledger[t.key].ticket_key]["parent"] == review for t in parts)
    second = Engine.from_settings(settings, store).run_once()
    store.close()
    counts = second.summary.as_counts()
    assert (counts["created"], counts["updated"], counts["failed"]) == (0, 0, 0)
    assert len(_created(site)) == len(first.summary.outcomes)
