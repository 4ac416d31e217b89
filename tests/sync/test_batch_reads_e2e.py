"""Each cycle's first pages in one REST Batch API call, end to end: ServiceNow stand-in → source
→ pull → mirror, over real HTTP on 127.0.0.1.

Counted in HTTP calls and in the reads the stand-in ran inside batches (never time): an idle
cycle is one call that reads each table once; new rows come through the batch and the rest of
their pages with ordinary calls; an instance without the Batch API, the setting turned off,
and reads the instance leaves unserviced all end in direct reads with the same outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from config import Settings
from connectors import AuthError, Pacer
from connectors.servicenow import ServiceNowSource, build_guard
from connectors.servicenow.wiring import build_client
from mapping import load_mappings
from sandbox import Sandbox
from sync.pull import PullSummary, pull
from sync.state import StateStore

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
BASE = datetime(2025, 6, 2, 8, 0, 0, tzinfo=UTC)
BATCH = "POST /api/now/<version>/batch"
TABLE = "GET /api/now/table/<table>"
# What an idle cycle reads: the component stream's three tables, then one per stream (two
# for materials); people are refreshed hourly, not in these cycles.
IDLE_TABLES = (
    "cmdb_rel_ci", "sys_audit_delete", "cmdb_ci", "cmdb_ci_service", "contract_sla", "task_sla",
    "asmt_metric_result", "kb_knowledge", "problem",
)  # fmt: skip

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture
def site() -> Iterator[Sandbox]:
    with Sandbox(seed=5, services=30, sla_records=300, now=FIXED_NOW) as running:
        yield running


def _source(site: Sandbox, **servicenow: Any) -> ServiceNowSource:
    section: dict[str, Any] = {
        "url": site.servicenow_url,
        "username": "integration.user",
        "password": "secret",
        "requests_per_second": 10000,
        "overlap_seconds": 60,
        **servicenow,
    }
    settings = Settings(servicenow=section)
    guard = build_guard(settings, Pacer(10000, burst=4))
    return ServiceNowSource(build_client(settings), settings.servicenow, guard)


def _cycle(source: ServiceNowSource, store: StateStore, minutes: int) -> PullSummary:
    return pull(source, load_mappings("servicenow"), store, until=BASE + timedelta(minutes=minutes))


def _warm(site: Sandbox, store: StateStore, **servicenow: Any) -> ServiceNowSource:
    """A source after its cold pull, with the stand-in's counters reset."""
    source = _source(site, **servicenow)
    _cycle(source, store, 0)
    site.servicenow_harness.reset()
    return source


def _calls(site: Sandbox) -> dict[str, Any]:
    return site.servicenow_harness.requests()


def test_an_idle_cycle_is_one_call_that_reads_each_table_once(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """With nothing changed, the cycle's first pages (nine tables) travel in one batch call:
    one HTTP request and one pacing token; the stand-in ran each table's read once in it."""
    source = _warm(site, sqlite_store)
    before = source.guard.requests_made
    summary = _cycle(source, sqlite_store, 5)
    calls = _calls(site)
    assert calls["by_route"] == {BATCH: 1}
    assert calls["sub_requests"] == {f"GET {table}": 1 for table in IDLE_TABLES}
    assert source.guard.requests_made - before == 1
    assert sum(summary.read.values()) == 0


def test_new_rows_come_through_the_batch_and_the_rest_of_their_pages_directly(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """Twelve new SLA records at five rows a page: the batch brings the first page, three
    ordinary calls the next two and the empty one that ends the read; every record is stored."""
    source = _warm(site, sqlite_store, page_size=5)
    app = site.servicenow
    template = {k: v for k, v in app.store.rows("task_sla")[0].items() if not k.startswith("sys_")}
    app.clock = BASE + timedelta(minutes=1)
    new = {app.insert("task_sla", **template)["sys_id"] for _ in range(12)}
    summary = _cycle(source, sqlite_store, 2)
    calls = _calls(site)
    assert calls["by_route"] == {BATCH: 1, TABLE: 3}
    assert calls["sub_requests"]["GET task_sla"] == 1
    assert new <= {r.key for r in sqlite_store.mirrored("sla_record")}
    assert summary.read["sla_record"] - summary.unchanged["sla_record"] == 12


def test_an_instance_without_the_batch_api_is_read_directly_for_good(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """An instance that answers 404 for /api/now/v1/batch (an older release) is asked once:
    one warning, then every read is a call of its own, cycle after cycle."""
    source = _warm(site, sqlite_store)
    site.knobs.update({"servicenow_batch": False})
    with capture_logs() as logs:
        _cycle(source, sqlite_store, 5)
        first = _calls(site)["by_route"]
        site.servicenow_harness.reset()
        _cycle(source, sqlite_store, 6)
    assert first == {BATCH: 1, TABLE: len(IDLE_TABLES)}
    assert _calls(site)["by_route"] == {TABLE: len(IDLE_TABLES)}
    warnings = [e for e in logs if e["event"] == "servicenow.batch_unavailable"]
    assert len(warnings) == 1 and warnings[0]["status"] == 404


def test_batch_reads_off_reads_call_by_call(site: Sandbox, sqlite_store: StateStore) -> None:
    """`servicenow.batch_reads: false`: no batch call, one call per table read."""
    source = _warm(site, sqlite_store, batch_reads=False)
    _cycle(source, sqlite_store, 5)
    assert _calls(site)["by_route"] == {TABLE: len(IDLE_TABLES)}


def test_reads_the_batch_left_unserviced_are_sent_directly(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """When the batch's time runs out after three reads (each taken to run 100 ms, 250 ms
    allowed), the instance returns the other six as unserviced: they are read directly."""
    source = _warm(site, sqlite_store)
    site.knobs.update({"servicenow_batch_timeout_ms": 250, "servicenow_batch_item_ms": 100})
    summary = _cycle(source, sqlite_store, 5)
    calls = _calls(site)
    assert calls["by_route"] == {BATCH: 1, TABLE: 6}
    assert sum(calls["sub_requests"].values()) == 3
    assert sum(summary.read.values()) == 0


def test_a_page_over_the_size_limit_cancels_the_rest_of_the_batch(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """A new SLA record makes its page larger than the per-item output limit: that read and
    the three queued after it come back unserviced and are read directly; the record is
    stored as without a batch."""
    source = _warm(site, sqlite_store)
    app = site.servicenow
    template = {k: v for k, v in app.store.rows("task_sla")[0].items() if not k.startswith("sys_")}
    app.clock = BASE + timedelta(minutes=1)
    new = app.insert("task_sla", **template)["sys_id"]
    site.knobs.update({"servicenow_batch_output_bytes": 200})
    _cycle(source, sqlite_store, 2)
    calls = _calls(site)
    # direct: task_sla (the row, then the empty page), asmt_metric_result, kb_knowledge, problem
    assert calls["by_route"] == {BATCH: 1, TABLE: 5}
    assert new in {r.key for r in sqlite_store.mirrored("sla_record")}


def test_a_read_the_acl_refuses_inside_the_batch_fails_as_it_would_alone(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """A 403 on contract_sla inside the batch raises the error the direct read raises: the
    table and the role to grant; nothing is read twice."""
    errors = []
    for batch_reads in (True, False):
        source = _warm(site, sqlite_store, batch_reads=batch_reads)
        site.knobs.update({"servicenow_denied_tables": ["contract_sla"]})
        try:
            with pytest.raises(AuthError) as raised:
                _cycle(source, sqlite_store, 5)
        finally:
            site.knobs.update({"servicenow_denied_tables": []})
        errors.append(raised.value)
    batched, direct = errors
    assert str(batched) == str(direct) and "table contract_sla" in str(batched)
    assert batched.hint == direct.hint and "sla_admin" in (batched.hint or "")


def test_a_batch_call_that_keeps_failing_sends_only_that_cycles_reads_directly(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """5xx on every batch call: it is retried like any read, then this cycle reads call by
    call (one warning); the next cycle tries the batch again."""
    source = _warm(site, sqlite_store)
    site.knobs.update({"faults": "5xx=1,only=POST /api/now/v1/batch"})
    with capture_logs() as logs:
        _cycle(source, sqlite_store, 5)
    failing = _calls(site)["by_route"]
    assert failing[BATCH] > 1, "retried as any read"
    assert failing[TABLE] == len(IDLE_TABLES)
    assert [e for e in logs if e["event"] == "servicenow.batch_failed"]
    site.knobs.update({"faults": ""})
    site.servicenow_harness.reset()
    _cycle(source, sqlite_store, 6)
    assert _calls(site)["by_route"] == {BATCH: 1}


def test_a_client_without_batch_calls_reads_as_before(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """A TableClient that has no `batch_list` (a fake, another implementation) is read call
    by call, one call per table when idle."""

    class ListOnly:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            if name == "batch_list":
                raise AttributeError(name)
            return getattr(self.inner, name)

    source = _source(site)
    source = ServiceNowSource(ListOnly(source.client), source.settings, source.guard)
    _cycle(source, sqlite_store, 0)
    site.servicenow_harness.reset()
    _cycle(source, sqlite_store, 5)
    assert _calls(site)["by_route"] == {TABLE: len(IDLE_TABLES)}


def test_a_page_the_acls_shorten_inside_the_batch_loses_no_row(
    site: Sandbox, sqlite_store: StateStore
) -> None:
    """ACLs shorten pages inside a batch as well (the `short` fault on the batch call): the
    short first page is not taken for the end, paging continues and every new row is stored."""
    source = _warm(site, sqlite_store, page_size=5)
    app = site.servicenow
    template = {k: v for k, v in app.store.rows("task_sla")[0].items() if not k.startswith("sys_")}
    app.clock = BASE + timedelta(minutes=1)
    new = {app.insert("task_sla", **template)["sys_id"] for _ in range(12)}
    site.knobs.update({"faults": "short=1,only=POST /api/now/v1/batch"})
    _cycle(source, sqlite_store, 2)
    calls = _calls(site)
    assert calls["by_route"][BATCH] == 1 and calls["by_route"][TABLE] >= 3
    assert new <= {r.key for r in sqlite_store.mirrored("sla_record")}
