"""The period a review pack shows is live until the pack is frozen (issue 17, item 4).

A cycle opened 75 days ago: its packs show the data up to the last whole month, not only what
was known when the cycle opened; a month later the packs not frozen yet move on with it, while a
frozen pack keeps the period it was reviewed on (as its ticket says)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connectors import TicketRef
from review import TicketKind, TicketSpec
from review.document import document_text
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.state import StateStore, open_store
from tests.sync.people import People

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    with Sandbox(seed=5, services=3, sla_records=400, index_lag_ms=0) as running:
        yield running


def _span(result: RunResult, service: str) -> str:
    period = result.build.packs[service].period
    last = (period.end - timedelta(days=1)).date()
    return f"period {period.start.date().isoformat()} to {last.isoformat()}"


def test_packs_follow_the_last_whole_month_until_frozen(site: Sandbox, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.review.cycle.start = (now - timedelta(days=75)).strftime("%m-%d")
    (tmp_path / "data").mkdir(exist_ok=True)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    clock = [now]

    def sync() -> RunResult:
        engine = Engine.from_settings(settings, store)
        engine.clock = lambda: clock[0]
        result = engine.run_once()
        assert not result.summary.failed, result.summary.failed
        return result

    opened = sync()
    frozen, live = [c.service_key for c in opened.build.candidates[:2]]
    settings.review.selection = [frozen, live]
    first = sync()
    month_start = date(now.year, now.month, 1)
    for key in (frozen, live):
        period = first.build.packs[key].period
        assert period.end.date() == month_start, "data up to the last whole month"
        assert period.end.date() > first.build.cycle.opens
        assert _span(first, key) in document_text(_spec(first, key).body)

    people = People(site, "jira")
    participate = _ref(
        store, f"{_spec(first, frozen).key.removesuffix(':review')}:participate_review"
    )
    people.close(participate)
    sync()  # the frozen pack's last version
    pack_before = people.description(_ref(store, _spec(first, frozen).key))
    assert _span(first, frozen) in pack_before

    clock[0] = now + timedelta(days=40)  # a month later
    later = sync()
    moved = later.build.packs[live].period
    assert moved.end.date() > month_start, "the live pack moved on by a month"
    assert _span(later, live) in people.description(_ref(store, _spec(later, live).key))
    assert people.description(_ref(store, _spec(first, frozen).key)) == pack_before, (
        "a frozen pack keeps the period it was reviewed on"
    )
    store.close()


def _spec(result: RunResult, service: str) -> TicketSpec:
    return next(
        t for t in result.tickets if t.kind is TicketKind.REVIEW and t.service_key == service
    )


def _ref(store: StateStore, key: str) -> TicketRef:
    row = store.ledger_rows("jira")[key]
    return TicketRef(key=row.ticket_key or "", id=row.ticket_id or "", url=row.ticket_url)
