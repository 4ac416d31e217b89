"""Fault suite: the cycle against a misbehaving sandbox still ends with the right tickets.

Each test injects one kind of fault (429 storms with Retry-After, quota exhaustion announced only
by X-RateLimit-Reset, 5xx bursts, timeouts, connection resets, malformed JSON, ACL-short pages,
a partial bulk failure, search index lag, a target down for several cycles), runs cycles until
one is clean, and checks what an admin would: one ticket per planned key, every source record
mirrored, retries counted in the daemon's metrics, retry waits that back off and honour the
tool's announced wait, and readiness false while the target is down. Retry waits are planned
but not slept (`set_testing`); pauses the connectors' pacers take still pass in real time.
"""

from __future__ import annotations

import math
import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Response

from config import HttpSettings, Settings
from connectors import RetryEvent, Stream
from sandbox import Harness, Sandbox
from sync.daemon import Daemon
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.health import Health
from sync.state import StateStore, open_store

SEED = 5
SERVICES = 8
SLA_RECORDS = 800
REVIEWED = 2
MAX_CYCLES = 4
RETRIES = "slm_sync_api_retries_total"


@pytest.fixture
def site() -> Iterator[Sandbox]:
    """A fresh sandbox (Jira Cloud and ServiceNow) per test: faults leave no trace behind."""
    running = Sandbox(seed=SEED, services=SERVICES, sla_records=SLA_RECORDS, index_lag_ms=100)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clean_mirror(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Record keys per stream after a read without faults (what "every record" means: the
    mapping leaves some records out, e.g. cancelled SLA records)."""
    with Sandbox(seed=SEED, services=SERVICES, sla_records=SLA_RECORDS) as clean:
        settings = _settings(clean, tmp_path_factory.mktemp("clean"))
        store = open_store(settings.sync.resolved_state_url())
        Engine.from_settings(settings, store).run_once(dry_run=True)
        keys = _mirror(store)
        store.close()
    return keys


def _mirror(store: StateStore) -> dict[str, set[str]]:
    return {stream.value: {r.key for r in store.mirrored(stream.value)} for stream in Stream}


def _settings(source: Sandbox, data_dir: Path, target: Sandbox | None = None) -> Settings:
    """Demo settings for the sandbox: two services reviewed, no clock-skew overlap."""
    settings = demo_settings(source, data_dir)
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.2
    if target is not None:
        settings.jira.url = target.jira_url
    settings.review.selection = [s.sys_id for s in source.estate.services if s.owner][:REVIEWED]
    return settings


def _converge(settings: Settings, store: StateStore) -> list[RunResult]:
    """Cycles, each by a fresh engine (a new process), until one has no failure."""
    runs: list[RunResult] = []
    for _ in range(MAX_CYCLES):
        runs.append(Engine.from_settings(settings, store).run_once())
        if not runs[-1].summary.failed:
            break
    return runs


def _tickets_per_key(site: Sandbox) -> Counter[str]:
    labels = (label for ticket in _created(site) for label in ticket["labels"])
    return Counter(label for label in labels if label.startswith("slm:"))


def _assert_final_state(
    site: Sandbox, runs: list[RunResult], store: StateStore, clean: dict[str, set[str]]
) -> None:
    """Clean last cycle, each planned ticket exactly once, every source record mirrored."""
    last = runs[-1]
    assert last.summary.failed == [], [o.error for o in last.summary.failed]
    per_key = _tickets_per_key(site)
    assert {key: n for key, n in per_key.items() if n > 1} == {}, "duplicate tickets"
    assert set(per_key) == {spec.key for spec in last.tickets}
    assert _mirror(store) == clean


def _retries(recorder: Any, system: str, status: str) -> float:
    value = recorder.metrics.registry.get_sample_value(
        RETRIES, {"system": system, "status": status}
    )
    return float(value or 0.0)


def _assert_backs_off(events: list[RetryEvent]) -> None:
    """No hot loop: every retry waits, and attempts stay under the configured limit."""
    assert events, "the fault caused no retry"
    assert all(event.wait > 0 for event in events)
    assert max(event.attempt for event in events) < HttpSettings().max_attempts


@pytest.mark.parametrize(
    ("faults", "statuses"),
    [
        pytest.param("5xx=0.12,seed=3", {"502", "503", "504"}, id="5xx-burst"),
        pytest.param("reset=0.06,seed=4", {"error"}, id="connection-resets"),
        pytest.param("malformed=0.06,seed=5", {"error"}, id="malformed-json"),
    ],
)
def test_transient_faults_end_in_one_ticket_per_key_with_retries_counted(
    site: Sandbox,
    tmp_path: Path,
    recorder: Any,
    clean_mirror: dict[str, set[str]],
    faults: str,
    statuses: set[str],
) -> None:
    """5xx bursts, connection resets and cut-off JSON on both tools: reads are retried and
    counted in the metrics; no write is repeated blindly, so each ticket exists once."""
    site.knobs.update({"faults": faults})
    settings = _settings(site, tmp_path)
    store = open_store(settings.sync.resolved_state_url())
    runs = _converge(settings, store)
    _assert_final_state(site, runs, store, clean_mirror)
    store.close()
    counted = sum(_retries(recorder, system, status) for system in ("jira", "servicenow")
                  for status in statuses)  # fmt: skip
    assert counted == len(recorder.retries) > 0
    _assert_backs_off(recorder.retries)


def test_timeouts_on_slow_answers_are_retried_without_duplicates(
    site: Sandbox, tmp_path: Path, recorder: Any, clean_mirror: dict[str, set[str]]
) -> None:
    """Answers stalled past the read timeout (a create may still happen on the server) are
    retried or looked up; the run ends with each ticket once."""
    site.knobs.update({"faults": "slow=0.03,slow_s=0.5,seed=6"})
    settings = _settings(site, tmp_path)
    settings.http.read_timeout = 0.2
    store = open_store(settings.sync.resolved_state_url())
    runs = _converge(settings, store)
    time.sleep(0.5)  # a create stalled on the server lands now: it must not be a second ticket
    _assert_final_state(site, runs, store, clean_mirror)
    store.close()
    assert any(event.error == "TransientError" for event in recorder.retries)
    _assert_backs_off(recorder.retries)


# Read whole every cycle through sys_id lookups (a short answer there reads as "hidden by an
# ACL"), so a transiently short answer is only repaired by the next cycle.
SNAPSHOT_STREAMS = (Stream.PEOPLE.value, Stream.COMPONENTS.value)


def test_acl_short_pages_lose_no_record(
    site: Sandbox, tmp_path: Path, recorder: Any, clean_mirror: dict[str, set[str]]
) -> None:
    """Pages that come back with fewer rows than asked (as ACLs hide rows), on ServiceNow lists
    and Jira searches alike, neither end paging early nor hide an existing ticket: with the
    state lost, nothing is created twice and every incrementally read record is mirrored."""
    settings = _settings(site, tmp_path)
    store = open_store(settings.sync.resolved_state_url())
    first = _converge(settings, store)
    site.knobs.update({"faults": "short=0.4,seed=7"})
    store.close()  # a lost state: tickets are found by search only, records read anew
    store = open_store(f"sqlite:///{tmp_path / 'fresh' / 'state.db'}")
    again = _converge(settings, store)
    assert sum(run.summary.as_counts()["created"] for run in again) == 0
    read = _mirror(store)
    for stream in set(clean_mirror) - set(SNAPSHOT_STREAMS):
        assert read[stream] == clean_mirror[stream], stream
    site.knobs.update({"faults": ""})
    repaired = Engine.from_settings(settings, store).run_once()
    _assert_final_state(site, [*first, *again, repaired], store, clean_mirror)
    store.close()


def test_429_storm_honours_retry_after_and_ends_complete(
    site: Sandbox, tmp_path: Path, recorder: Any, clean_mirror: dict[str, set[str]]
) -> None:
    """Jira answers 429 with Retry-After once over 3 requests a second: every retry of a 429
    waits at least the Retry-After, all are counted, and every ticket is created once."""
    site.knobs.update({"rate_limit": "jira=3/1s"})
    settings = _settings(site, tmp_path)
    store = open_store(settings.sync.resolved_state_url())
    runs = _converge(settings, store)
    _assert_final_state(site, runs, store, clean_mirror)
    store.close()
    limited = [e for e in recorder.retries if e.status == 429]
    assert limited and _retries(recorder, "jira", "429") == len(limited)
    assert all(event.wait >= 1.0 for event in limited)  # the sandbox's Retry-After is >= 1 s
    answered_429 = sum(1 for system, status in recorder.calls if status == 429)
    assert answered_429 == len(limited)  # no 429 was followed by an unplanned resend


def _quota_exhausted(limit: Any, retry_after: int, reset_at: float) -> Response:
    """ServiceNow's quota answer without Retry-After: only X-RateLimit-Reset (epoch seconds)."""
    response = Response(
        '{"error":{"message":"Rate limit exceeded"},"status":"failure"}',
        429,
        content_type="application/json",
    )
    response.headers["X-RateLimit-Limit"] = str(limit.requests)
    response.headers["X-RateLimit-Reset"] = str(math.ceil(reset_at))
    return response


def test_quota_exhaustion_waits_for_x_ratelimit_reset(
    tmp_path: Path, recorder: Any, clean_mirror: dict[str, set[str]]
) -> None:
    """ServiceNow out of quota, saying only when it resets (X-RateLimit-Reset): the retries
    wait for the reset time, and the mirror ends complete."""
    site = Sandbox(seed=SEED, services=SERVICES, sla_records=SLA_RECORDS, index_lag_ms=100)
    site.servicenow_harness = Harness(site.servicenow, site.knobs, rate_limited=_quota_exhausted)
    site.knobs.update({"rate_limit": "servicenow=15/1s"})
    site.start()
    try:
        settings = _settings(site, tmp_path)
        settings.servicenow.page_size = 250
        store = open_store(settings.sync.resolved_state_url())
        runs = _converge(settings, store)
        _assert_final_state(site, runs, store, clean_mirror)
        store.close()
    finally:
        site.stop()
    limited = [e for e in recorder.retries if e.system == "servicenow" and e.status == 429]
    assert limited and _retries(recorder, "servicenow", "429") == len(limited)
    assert all(event.wait > 0 for event in limited)


def test_partial_bulk_failure_fails_one_ticket_and_creates_the_rest(
    site: Sandbox, tmp_path: Path, recorder: Any, clean_mirror: dict[str, set[str]]
) -> None:
    """One ticket Jira refuses inside a bulk create (an assignee override naming no account)
    fails alone with its reason; the rest exist once; once the override is fixed, the next
    cycle creates just that ticket."""
    settings = _settings(site, tmp_path)
    owner = next(s for s in site.estate.services if s.sys_id == settings.review.selection[0])
    email = site.estate.person(owner.owner or "").email
    data = settings.model_dump()
    data["review"]["people"] = {email: {"jira_account_id": "no-such-account"}}
    store = open_store(settings.sync.resolved_state_url())
    broken = Engine.from_settings(Settings.model_validate(data), store).run_once()
    failed = {o.key for o in broken.summary.failed}
    refused = {o.key for o in broken.summary.failed if "assignee" in (o.error or "")}
    review = f"slm:{broken.build.cycle.id}:{owner.sys_id}:review"
    assert review in refused and "review.people" in str(broken.summary.failed)
    waiting = failed - refused  # sub-tasks of the refused review wait for their parent
    assert all(key.startswith(review.removesuffix("review")) for key in waiting)
    per_key = _tickets_per_key(site)
    assert set(per_key) == {o.key for o in broken.summary.outcomes if o.ticket}
    assert max(per_key.values()) == 1
    fixed = _converge(settings, store)
    created = {o.key for run in fixed for o in run.summary.outcomes if o.action.value == "create"}
    assert failed <= created
    _assert_final_state(site, [broken, *fixed], store, clean_mirror)
    store.close()


def test_search_index_lag_after_a_lost_ledger_creates_nothing_twice(
    site: Sandbox, tmp_path: Path, recorder: Any, clean_mirror: dict[str, set[str]]
) -> None:
    """Right after a cycle the state is lost while Jira's index still lags (labels searchable
    only 2.5 s after a write, longer than the next cycle needs to get to its lookups): the next
    cycle waits the configured lag, finds every ticket and creates none."""
    site.knobs.update({"index_lag_ms": 2500})
    settings = _settings(site, tmp_path)
    settings.jira.index_lag_seconds = 0.05  # nothing exists yet: no need to wait in cycle one
    store = open_store(settings.sync.resolved_state_url())
    first = _converge(settings, store)
    store.close()
    newest = max(_created(site), key=lambda ticket: int(ticket["id"]))
    assert not _searchable(site, next(x for x in newest["labels"] if x.startswith("slm:")))
    settings.jira.index_lag_seconds = 2.5
    store = open_store(f"sqlite:///{tmp_path / 'lost' / 'state.db'}")
    again = Engine.from_settings(settings, store).run_once()
    assert again.summary.as_counts()["created"] == 0
    _assert_final_state(site, [*first, again], store, clean_mirror)
    store.close()


def _created(site: Sandbox) -> list[dict[str, Any]]:
    tickets: list[dict[str, Any]] = requests.get(
        f"{site.jira_url}/__sandbox/created", timeout=10
    ).json()["tickets"]
    return tickets


def _searchable(site: Sandbox, label: str) -> bool:
    """Whether JQL finds the label yet (the index lags behind writes)."""
    found = requests.post(
        f"{site.jira_url}/rest/api/3/search/jql",
        json={"jql": f'labels = "{label}"', "fields": ["labels"]},
        auth=("slm-demo", "demo-api-token"),
        timeout=10,
    ).json()
    return bool(found.get("issues"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_target_down_for_several_cycles_then_back(
    site: Sandbox, tmp_path: Path, recorder: Any, clean_mirror: dict[str, set[str]]
) -> None:
    """Jira unreachable for three cycles: each fails with readiness false, retries back off and
    are counted; back up, the next cycle is ready and brings the changed pack in, no duplicate."""
    jira = Sandbox(seed=SEED, services=SERVICES, sla_records=SLA_RECORDS, jira_port=_free_port())
    jira.start()
    try:
        settings = _settings(site, tmp_path, target=jira)
        store = open_store(settings.sync.resolved_state_url())
        health = Health(interval_seconds=3600)
        daemon = Daemon(Engine.from_settings(settings, store), 3600, health, recorder.metrics)
        daemon.cycle()
        assert health.ready() == (True, "ok")
        _breach_one(site, settings.review.selection[0])
        jira.stop()
        recorder.clear()
        daemon.metrics = recorder.metrics
        for _ in range(3):
            daemon.cycle()
            ready, reason = health.ready()
            assert not ready and "unreachable" in reason
        down_retries = list(recorder.retries)
        jira.start()
        daemon.cycle()
        assert health.ready() == (True, "ok")
        failed = recorder.metrics.registry.get_sample_value(
            "slm_sync_cycles_total", {"status": "failed"}
        )
        assert failed == 3
        final = Engine.from_settings(settings, store).run_once()
        _assert_final_state(jira, [final], store, clean_mirror)
        store.close()
    finally:
        jira.stop()
    assert _retries(recorder, "jira", "error") >= len(down_retries) > 0
    _assert_waits_grow(down_retries)


def _breach_one(site: Sandbox, service_key: str) -> None:
    """Turn one met SLA record of the service into a breach, stamped a few seconds ago."""
    agreements = {a.sys_id for a in site.estate.agreements if a.applies_to == service_key}
    record = next(
        r for r in site.estate.sla_records
        if r.sla in agreements and not r.has_breached and r.stage == "completed"
    )  # fmt: skip
    site.servicenow.clock = datetime.now(UTC) - timedelta(seconds=5)
    site.servicenow.update("task_sla", record.sys_id, has_breached="true", stage="breached")


def _assert_waits_grow(events: list[RetryEvent]) -> None:
    """Exponential backoff with jitter: later attempts wait longer on average than first ones."""
    _assert_backs_off(events)
    first = [e.wait for e in events if e.attempt == 1]
    late = [e.wait for e in events if e.attempt >= 4]
    assert first and late
    assert sum(late) / len(late) > sum(first) / len(first)
