"""Reading the seeded estate from the ServiceNow stand-in over HTTP: full, incremental, faults."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors import AuthError, Cursor, Page, RetryPolicy, Stream, set_testing
from connectors.pacing import Pacer
from connectors.servicenow import Guard, ServiceNowSource
from sandbox import Sandbox

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
STAMP = "%Y-%m-%d %H:%M:%S"


def _read(source: ServiceNowSource, stream: Stream, **kwargs: Any) -> tuple[list[Page], Cursor]:
    pages = list(source.read(stream, **kwargs))
    cursors = [p.cursor for p in pages if p.cursor is not None]
    return pages, cursors[-1] if cursors else kwargs.get("since") or Cursor("")


def _ids(pages: list[Page]) -> list[str]:
    return [str(r["sys_id"]) for p in pages for r in p.records]


def test_full_read_returns_every_seeded_sla_record_once(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """A full read of task_sla in pages of 250 yields all 3000 seeded rows exactly once, each
    with the dot-walked service, priority and task number as literal keys."""
    source = make_source(sn_sandbox, page_size=250)
    pages, _ = _read(source, Stream.SLA_RECORDS)
    ids = _ids(pages)
    assert len(ids) == len(set(ids)) == 3000
    row = pages[0].records[0]
    assert {"task.business_service", "task.priority", "task.number", "sla.name"} <= set(row)
    assert all(not p.errors for p in pages)


def test_full_read_uses_the_lower_bound_of_requests(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """Reading 3000 rows in pages of 1000 takes ceil(3000 / 1000) + 1 = 4 requests."""
    source = make_source(sn_sandbox)
    _read(source, Stream.SLA_RECORDS)
    assert source.guard.requests_made == 4


def test_services_leave_out_offerings_and_read_the_special_name(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """The service stream lists the 12 services, not the offerings extending the table, and
    the service named with quotes, caret and equals sign comes through unchanged."""
    pages, _ = _read(make_source(sn_sandbox), Stream.SERVICES)
    by_id = {r["sys_id"]: r for p in pages for r in p.records}
    assert set(by_id) == {s.sys_id for s in sn_sandbox.estate.services}
    special = sn_sandbox.estate.deliberate["service_special_name"]
    assert "^" in by_id[special]["name"] and "=" in by_id[special]["name"]


def test_components_walk_relations_and_survive_the_cycle(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """Every seeded component is reached from its service; the component in a dependency
    cycle appears once, and its child list names its partner in the cycle."""
    pages, _ = _read(make_source(sn_sandbox), Stream.COMPONENTS)
    rows = {r["sys_id"]: r for p in pages for r in p.records}
    assert set(rows) == {c.sys_id for c in sn_sandbox.estate.components}
    assert all(p.cursor is None for p in pages)
    cyclic = rows[sn_sandbox.estate.deliberate["relation_cycle"]]
    assert cyclic["slm_service_ids"] and cyclic["slm_depends_on"]
    partner = rows[cyclic["slm_depends_on"][0]]
    assert cyclic["sys_id"] in partner["slm_depends_on"]


def test_relation_depth_limits_the_walk(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """With relation_depth 1 only the CIs a service depends on directly are components."""
    pages, _ = _read(make_source(sn_sandbox, relation_depth=1), Stream.COMPONENTS)
    direct = {
        r.child
        for r in sn_sandbox.estate.relations
        if r.parent in {s.sys_id for s in sn_sandbox.estate.services}
    }
    assert set(_ids(pages)) == direct


def test_people_are_the_owners_services_and_components_name(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """The person stream returns the sys_user records of service and component owners (the
    stock fields owned_by / managed_by), including the person whose email Jira hides, and no one
    else."""
    estate = sn_sandbox.estate
    pages, _ = _read(make_source(sn_sandbox), Stream.PEOPLE)
    named = {s.owner for s in estate.services} | {c.owner for c in estate.components}
    assert set(_ids(pages)) == {n for n in named if n}
    assert estate.deliberate["person_email_hidden"] in _ids(pages)


def test_csat_answers_carry_the_service_of_their_incident(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """Each CSAT answer gets slm_service_id, the business service of the incident it rates."""
    estate = sn_sandbox.estate
    pages, _ = _read(make_source(sn_sandbox), Stream.CSAT)
    incidents = {i.sys_id: i.business_service for i in estate.incidents}
    rows = [r for p in pages for r in p.records]
    assert len(rows) == len(estate.csat)
    assert all(r["slm_service_id"] == incidents[r["source_id"]] for r in rows)


def test_materials_merge_knowledge_and_problems_in_one_cursor_order(
    sn_sandbox: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """Materials list knowledge articles and problems, each with slm_kind and slm_service_id,
    in (sys_updated_on, sys_id) order so one cursor covers both tables."""
    pages, _ = _read(make_source(sn_sandbox, page_size=10), Stream.MATERIALS)
    rows = [r for p in pages for r in p.records]
    assert {r["slm_kind"] for r in rows} == {"knowledge", "problem"}
    assert all(r["slm_service_id"] for r in rows)
    keys = [(r["sys_updated_on"], r["sys_id"]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_incremental_read_returns_exactly_the_changes(
    sandbox_small: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """After a full read, new and updated rows (several sharing one second, across page
    boundaries) are returned by the next read from the committed cursor, each exactly once,
    and nothing that did not change comes back (no overlap: the keyset alone)."""
    app = sandbox_small.servicenow
    base = datetime(2025, 6, 2, 8, 0, 0, tzinfo=UTC)
    app.clock = base
    first_batch = [_insert_sla(app) for _ in range(12)]  # one second, spans pages of 5
    source = make_source(sandbox_small, page_size=5, overlap_seconds=0)
    pages, cursor = _read(source, Stream.SLA_RECORDS, until=base)
    assert set(first_batch) <= set(_ids(pages))
    assert cursor.updated == base.strftime(STAMP)

    app.clock = base + timedelta(seconds=1)
    added = [_insert_sla(app) for _ in range(7)]
    seeded = [r.sys_id for r in sandbox_small.estate.sla_records[:4]]
    for sys_id in [*seeded, *first_batch[:3]]:
        app.update("task_sla", sys_id, stage="completed")
    later, next_cursor = _read(
        source, Stream.SLA_RECORDS, since=cursor, until=base + timedelta(seconds=1)
    )
    changed = _ids(later)
    assert sorted(changed) == sorted([*added, *seeded, *first_batch[:3]])
    again, _ = _read(source, Stream.SLA_RECORDS, since=next_cursor, until=app.clock)
    assert _ids(again) == []


def test_rows_written_after_the_run_bound_wait_for_the_next_run(
    sandbox_small: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """A row stamped after the run's bound (start minus clock skew) is not read yet, so the
    cursor never passes it; the next run reads it (no overlap: only the new row)."""
    app = sandbox_small.servicenow
    app.clock = None
    source = make_source(sandbox_small, overlap_seconds=0)
    _, cursor = _read(source, Stream.AGREEMENTS)
    fresh = app.insert("contract_sla", name="SLA: fresh", type="SLA")["sys_id"]
    pages, _ = _read(source, Stream.AGREEMENTS, since=cursor)  # default bound: now - 60 s
    assert fresh not in _ids(pages)
    pages, _ = _read(
        source, Stream.AGREEMENTS, since=cursor, until=datetime.now(UTC) + timedelta(1)
    )
    assert _ids(pages) == [fresh]


def test_short_pages_and_429_storms_lose_nothing(
    sandbox_small: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """With ACL-short pages, proxy 5xx, cut-off JSON and a tight rate limit, a full read still
    returns every row exactly once: paging stops only on an empty page and every transient
    failure is retried after the wait the instance asked for."""
    set_testing(False)  # real (shortened) waits: the rate window is wall time
    sandbox_small.knobs.update(
        {"faults": "short=0.3,5xx=0.05,malformed=0.05,seed=11", "rate_limit": "servicenow=8/200ms"}
    )
    try:
        source = make_source(sandbox_small, page_size=40)
        source.guard = Guard(
            source.guard.pacer,
            RetryPolicy(max_attempts=60, max_seconds=60, sleep=lambda s: time.sleep(min(s, 0.05))),
            concurrency=1,
        )
        pages, _ = _read(source, Stream.SLA_RECORDS, until=FIXED_NOW)
    finally:
        sandbox_small.knobs.update({"faults": "", "rate_limit": ""})
    ids = _ids(pages)
    seeded = {r.sys_id for r in sandbox_small.estate.sla_records}
    assert len(ids) == len(set(ids)) and set(ids) == seeded
    counts = sandbox_small.servicenow_harness.requests()["by_route"]
    assert counts["GET /api/now/table/<table>"] > len(seeded) / 40 + 1  # retries happened


def test_rejected_credentials_name_the_table_and_role(
    sandbox_small: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """A 401 stops the read with an AuthError naming the table and the role usually needed."""
    source = make_source(sandbox_small, password="wrong-password")
    with pytest.raises(AuthError) as caught:
        list(source.read(Stream.SLA_RECORDS))
    assert "task_sla" in str(caught.value) and "itil" in str(caught.value)


def _insert_sla(app: Any) -> str:
    return str(app.insert("task_sla", stage="in_progress", has_breached="false")["sys_id"])


def test_a_full_bucket_never_tips_a_fixed_one_second_window(
    sandbox_small: Sandbox, make_source: Callable[..., ServiceNowSource]
) -> None:
    """The stand-in counts requests per wall-clock second (knob `rate_limit`) as fixed-window
    limits do. Paced at exactly that rate with a bucket of 5, the read starts just after a
    window opens: the bucket's 5 then 9 more at the rate made 14 in that second (a 429, and a
    second's pause for every request); now no second holds more than the rate, and the read
    needs no retry (one attempt allowed)."""
    set_testing(False)  # real waits: the window is wall time
    sandbox_small.knobs.update({"rate_limit": "servicenow=10/1s"})
    try:
        source = make_source(sandbox_small, page_size=8)
        source.guard = Guard(Pacer(10, burst=5), RetryPolicy(max_attempts=1), concurrency=1)
        time.sleep(1.1 - time.time() % 1)  # 100 ms into a second
        pages, _ = _read(source, Stream.SLA_RECORDS, until=FIXED_NOW)
    finally:
        sandbox_small.knobs.update({"rate_limit": ""})
    assert len(set(_ids(pages))) == len(sandbox_small.estate.sla_records)
    counts = sandbox_small.servicenow_harness.requests()["by_route"]
    assert counts["GET /api/now/table/<table>"] >= 25  # over two seconds' worth
