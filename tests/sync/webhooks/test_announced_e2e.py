"""A breach announced by a signed webhook reaches its review ticket in one prompted cycle.

End to end with the shipped defaults (`clock_skew_seconds` 60, a poll interval far away): the
real daemon behind its HTTP receiver, the ServiceNow and Jira stand-ins, the real clients. The
prompted cycle reads exactly the announced `task_sla` record (by sys_id), leaves the stream
cursors where they were, rebuilds the one review it belongs to and writes its ticket and the
change comment. Calls and rebuilt reviews are counted, never time.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from config import Settings
from config.settings import WebhookSettings
from sandbox import Sandbox
from sync.daemon import Daemon
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.health import Health, HealthServer
from sync.metrics import Metrics
from sync.state import StateStore, open_store
from sync.webhooks import (
    JIRA_PATH,
    SERVICENOW_PATH,
    WebhookReceiver,
    WorkItem,
    sign_jira,
    sign_servicenow,
)

pytestmark = pytest.mark.usefixtures("no_retry_waits")
SECRET = "sn-webhook-secret-e2e"
AUTH = ("slm-demo", "demo-api-token")


@dataclass
class Running:
    """The daemon serving webhooks, with every engine run it made recorded."""

    site: Sandbox
    settings: Settings
    store: StateStore
    daemon: Daemon
    url: str
    results: list[RunResult] = field(default_factory=list)
    prompted: list[tuple[WorkItem, ...]] = field(default_factory=list)
    done: threading.Condition = field(default_factory=threading.Condition)
    gate: threading.Event = field(default_factory=threading.Event)  # runs wait while clear

    def wait_runs(self, count: int, timeout: float = 60) -> None:
        with self.done:
            assert self.done.wait_for(lambda: len(self.results) >= count, timeout), self.results


def _start(site: Sandbox, tmp_path: Path, reviews: int) -> Iterator[Running]:
    (tmp_path / "data").mkdir()
    settings = demo_settings(site, tmp_path / "data")
    assert settings.servicenow.clock_skew_seconds == 60, "the shipped default"
    settings.webhooks = WebhookSettings(
        enabled=True, servicenow_secret=SecretStr(SECRET), jira_secret=SecretStr(SECRET)
    )
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    probe = Engine.from_settings(settings, store).run_once(dry_run=True)
    settings.review.selection = [c.service_key for c in probe.build.candidates[:reviews]]
    engine = Engine.from_settings(settings, store)
    health, metrics = Health(interval_seconds=3600), Metrics()
    daemon = Daemon(engine, 3600, health, metrics)
    running = Running(site, settings, store, daemon, "")
    running.gate.set()
    run_once, run_prompted = engine.run_once, engine.run_prompted

    def recorded(work: tuple[WorkItem, ...] = ()) -> RunResult:
        assert running.gate.wait(60)
        result = run_prompted(work) if work else run_once()
        with running.done:
            running.prompted.append(work)
            running.results.append(result)
            running.done.notify_all()
        return result

    engine.run_once = lambda: recorded()  # type: ignore[method-assign]
    engine.run_prompted = recorded  # type: ignore[method-assign]
    receiver = WebhookReceiver(settings.webhooks, daemon.enqueue)
    server = HealthServer(health, metrics, host="127.0.0.1", port=0, webhooks=receiver).start()
    running.url = f"http://127.0.0.1:{server.port}"
    loop = threading.Thread(target=daemon.run, daemon=True)
    loop.start()
    try:
        running.wait_runs(1, 300)  # the daemon's first (whole) cycle creates the tickets
        yield running
    finally:
        daemon.stop.set()
        daemon.wake.set()
        loop.join(timeout=60)
        server.stop()
        store.close()


@pytest.fixture
def one_review(tmp_path: Path) -> Iterator[Running]:
    with Sandbox(seed=3, services=3, sla_records=300) as site:
        yield from _start(site, tmp_path, reviews=1)


def _breach(site: Sandbox, service: str, agreements: set[str], *, skip: int = 0) -> str:
    """Turn a met SLA record of the service into a breach, stamped now (inside the skew)."""
    recent = datetime.now(UTC) - timedelta(days=200)
    records = [
        r
        for r in site.estate.sla_records
        if r.sla in agreements and not r.has_breached and r.stage == "completed"
        and r.start_time > recent
    ]  # fmt: skip
    record = records[skip]
    record.has_breached = True
    site.servicenow.clock = datetime.now(UTC)
    site.servicenow.update("task_sla", record.sys_id, has_breached="true", stage="breached")
    return str(record.sys_id)


def _announce(url: str, payload: dict[str, str], delivery: str) -> int:
    body = json.dumps(payload).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-SLM-Signature": sign_servicenow(SECRET, stamp, body),
        "X-SLM-Timestamp": stamp,
        "X-SLM-Delivery": delivery,
    }
    return requests.post(url + SERVICENOW_PATH, data=body, headers=headers, timeout=10).status_code


def _issue(site: Sandbox, key: str, fields: str = "description,comment") -> dict[str, Any]:
    found: dict[str, Any] = requests.get(
        f"{site.jira_url}/rest/api/3/issue/{key}",
        params={"fields": fields}, auth=AUTH, timeout=10,
    ).json()["fields"]  # fmt: skip
    return found


def _charts_shown(description: Any) -> list[str]:
    """The attachment ids the description's inline images show (Cloud: content URLs)."""
    return re.findall(r"/rest/api/3/attachment/content/(\w+)", json.dumps(description))


def _poll(running: Running, runs: int) -> RunResult:
    """Run the regular (whole) cycle now, the skew passed, and wait for it."""
    engine = running.daemon.engine
    engine.clock = lambda: datetime.now(UTC) + timedelta(seconds=61)
    running.daemon._next_poll = 0.0
    running.daemon.wake.set()
    running.wait_runs(runs)
    return running.results[runs - 1]


def _review(result: RunResult) -> tuple[str, str]:
    """(service, Jira key) of the first run's review ticket."""
    outcome = next(o for o in result.summary.outcomes if o.kind == "review" and o.ticket)
    service = next(iter(result.build.packs))
    return service, str(outcome.ticket)


def test_announced_breach_is_in_its_ticket_after_one_prompted_cycle(one_review: Running) -> None:
    """Shipped skew 60 s: the breach stamped now is in the review ticket (pack and change
    comment) after one prompted cycle of ≤ 3 ServiceNow calls that rebuilt one review."""
    site, first = one_review.site, one_review.results[0]
    service, ticket = _review(first)
    agreements = {a.key for a in first.build.agreements if a.service_key == service}
    cursors = {
        s: one_review.store.cursor("servicenow", s) for s in ("sla_record", "service", "agreement")
    }
    before = _issue(site, ticket)
    breached_before = first.build.packs[service].attainments
    record = _breach(site, service, agreements)
    site.servicenow_harness.reset()
    assert site.jira_harness is not None
    site.jira_harness.reset()
    payload = {"event": "task_sla.breached", "service": service, "table": "task_sla",
               "record": record}  # fmt: skip
    assert _announce(one_review.url, payload, "breach-1") == 202
    one_review.wait_runs(2)
    prompted = one_review.results[1]
    assert [(i.kind, i.key, i.service) for i in one_review.prompted[1]] == [
        ("sla_record", record, service)
    ]
    assert site.servicenow_harness.requests()["total"] <= 3
    assert site.servicenow_harness.requests()["by_route"] == {"GET /api/now/table/<table>": 1}
    assert prompted.targeted == (service,)
    assert list(prompted.build.packs) == [service], "one review rebuilt"
    assert [o.key for o in prompted.summary.outcomes if o.kind == "review"] == [
        o.key for o in first.summary.outcomes if o.kind == "review"
    ]
    assert sum(a.breached for a in prompted.build.packs[service].attainments) == 1 + sum(
        a.breached for a in breached_before
    )
    after = _issue(site, ticket)
    assert after["description"] != before["description"], "the pack shows the breach"
    comments = json.dumps(after["comment"]["comments"][len(before["comment"]["comments"]) :])
    assert "1 new breach of" in comments, "the change comment names it"
    assert {s: one_review.store.cursor("servicenow", s) for s in cursors} == cursors


def test_the_next_poll_reads_the_announced_record_again_and_changes_nothing(
    one_review: Running,
) -> None:
    """Once the skew has passed, the poll reads the announced record behind its cursor: it is
    stored unchanged (not mapped again), the cursor moves past it, and the whole build makes
    the very review the announced cycle's partial build made: the ticket's pack and comments
    stay as they are (only the chart the prompted cycle left is brought up to date)."""
    site, first = one_review.site, one_review.results[0]
    service, ticket = _review(first)
    agreements = {a.key for a in first.build.agreements if a.service_key == service}
    record = _breach(site, service, agreements)
    payload = {"event": "task_sla.breached", "service": service, "task_sla": record}
    assert _announce(one_review.url, payload, "breach-2") == 202
    one_review.wait_runs(2)
    announced = _issue(site, ticket)
    cursor = one_review.store.cursor("servicenow", "sla_record")
    poll = _poll(one_review, 3)
    assert poll.targeted is None
    assert poll.pulled.unchanged["sla_record"] >= 1 and poll.pulled.read["sla_record"] >= 1
    assert one_review.store.cursor("servicenow", "sla_record") > (cursor or ("", ""))
    review = next(o for o in poll.summary.outcomes if o.kind == "review")
    # The announced cycle's partial build made the review the whole build makes.
    mine = [t for t in one_review.results[1].tickets if t.kind.value == "review"]
    assert mine == [t for t in poll.tickets if t.kind.value == "review" and t.key == mine[0].key]
    assert review.action.value == "unchanged"
    polled = _issue(site, ticket)
    assert polled["comment"] == announced["comment"]
    shown_before, shown_now = (
        _charts_shown(announced["description"]),
        _charts_shown(polled["description"]),
    )
    assert json.dumps(polled["description"]).replace(shown_now[0], shown_before[0]) == json.dumps(
        announced["description"]
    ), "the pack as the announced cycle wrote it; only the chart changed"


def test_the_poll_after_a_prompted_cycle_brings_the_chart_without_a_second_comment(
    one_review: Running,
) -> None:
    """A prompted cycle writes the pack and its change comment and leaves the chart as it was
    (no upload, no removal, no per-ticket read); the next regular cycle replaces the chart:
    one upload, one description write pointing at it, the old file removed, and no comment."""
    site, first = one_review.site, one_review.results[0]
    service, ticket = _review(first)
    agreements = {a.key for a in first.build.agreements if a.service_key == service}
    before = _issue(site, ticket, "description,comment,attachment")
    old_chart = _charts_shown(before["description"])
    assert len(old_chart) == 1 and [a["id"] for a in before["attachment"]] == old_chart
    record = _breach(site, service, agreements)
    assert site.jira_harness is not None
    site.jira_harness.reset()
    payload = {"event": "task_sla.breached", "service": service, "task_sla": record}
    assert _announce(one_review.url, payload, "chart-1") == 202
    one_review.wait_runs(2)
    calls = site.jira_harness.requests()["by_route"]
    assert calls["PUT /rest/api/3/issue/<key>"] == 1
    assert calls["POST /rest/api/3/issue/<key>/comment"] == 1
    assert "GET /rest/api/3/issue/<key>" not in calls, "read ahead in the cycle's search"
    assert "POST /rest/api/3/issue/<key>/attachments" not in calls, "the chart waits"
    prompted = _issue(site, ticket, "description,comment,attachment")
    assert prompted["description"] != before["description"], "the pack shows the breach"
    assert _charts_shown(prompted["description"]) == old_chart, "the chart it showed"
    assert [a["id"] for a in prompted["attachment"]] == old_chart
    site.jira_harness.reset()
    poll = _poll(one_review, 3)
    calls = site.jira_harness.requests()["by_route"]
    review = next(o for o in poll.summary.outcomes if o.ticket == ticket)
    assert review.action.value == "unchanged", "the pack is the one the prompted cycle wrote"
    others = sum(o.action.value == "update" for o in poll.summary.outcomes)  # the cycle's ticket
    assert calls["POST /rest/api/3/issue/<key>/attachments"] == 1
    assert calls["PUT /rest/api/3/issue/<key>"] == 1 + others, "one description write"
    assert calls["DELETE /rest/api/3/attachment/<int:attachment_id>"] == 1
    assert "POST /rest/api/3/issue/<key>/comment" not in calls, "no second change comment"
    assert "GET /rest/api/3/issue/<key>" not in calls
    polled = _issue(site, ticket, "description,comment,attachment")
    assert polled["comment"] == prompted["comment"]
    new_chart = _charts_shown(polled["description"])
    assert new_chart != old_chart and [a["id"] for a in polled["attachment"]] == new_chart
    _poll(one_review, 4)
    assert _issue(site, ticket, "description,comment,attachment") == polled, "settled"


def test_old_payload_without_the_record_rebuilds_the_service(one_review: Running) -> None:
    """A business rule of the earlier shape names only the service: that service's record is
    read and its review rebuilt, alone."""
    first = one_review.results[0]
    service, _ = _review(first)
    one_review.site.servicenow_harness.reset()
    assert _announce(one_review.url, {"event": "service.changed", "service": service}, "s-1") == 202
    one_review.wait_runs(2)
    assert one_review.results[1].targeted == (service,)
    assert list(one_review.results[1].build.packs) == [service]
    assert one_review.site.servicenow_harness.requests()["total"] == 1


@pytest.fixture
def fifty_reviews(tmp_path: Path) -> Iterator[Running]:
    with Sandbox(seed=5, services=50, sla_records=2500) as site:
        yield from _start(site, tmp_path, reviews=50)


def test_a_burst_of_fifty_breaches_merges_into_the_next_prompted_cycle(
    fifty_reviews: Running,
) -> None:
    """50 breaches of 50 services announced while a prompted cycle runs: none is lost, the 49
    that came during it make one more cycle, the records read in one call per cycle; in Jira
    each review costs its update and its change comment, every read is a search of many
    tickets, and the charts wait for the regular cycle."""
    running = fifty_reviews
    site, first = running.site, running.results[0]
    assert len(first.build.packs) == 50
    records: dict[str, str] = {}
    for service in first.build.packs:
        agreements = {a.key for a in first.build.agreements if a.service_key == service}
        records[service] = _breach(site, service, agreements)
    site.servicenow_harness.reset()
    assert site.jira_harness is not None
    site.jira_harness.reset()
    running.gate.clear()  # the first delivery's cycle waits: the others arrive during it
    statuses = []
    for n, (service, record) in enumerate(records.items()):
        payload = {"event": "task_sla.breached", "service": service, "task_sla": record}
        statuses.append(_announce(running.url, payload, f"burst-{n}"))
        if n == 0:
            with running.done:  # the first delivery's cycle has taken its item
                assert running.done.wait_for(lambda: not running.daemon.pending, 10)
    running.gate.set()
    assert statuses == [202] * 50
    running.wait_runs(3, 300)
    time.sleep(0.5)  # a fourth cycle would have started by now
    assert len(running.results) == 3, "one prompted cycle for the burst after the first"
    items = [i for work in running.prompted[1:] for i in work]
    assert sorted(i.key for i in items) == sorted(records.values()), "none lost"
    assert [len(w) for w in running.prompted[1:]] == [1, 49]
    assert site.servicenow_harness.requests()["total"] == 2, "one sys_idIN read per cycle"
    rebuilt = [len(r.build.packs) for r in running.results[1:]]
    assert rebuilt == [1, 49]
    updated = [
        o.key for r in running.results[1:] for o in r.summary.outcomes
        if o.kind == "review" and o.action.value == "update"
    ]  # fmt: skip
    assert len(updated) == 50
    calls = site.jira_harness.requests()["by_route"]
    # Per changed review: its update and the change comment. The tickets to update are read
    # ahead (one search of 50); the chart waits for the regular cycle. The other searches read
    # the cycle's and the reviews' tickets back (the record of the process), 50 per search.
    assert calls == {
        "PUT /rest/api/3/issue/<key>": 50,
        "POST /rest/api/3/issue/<key>/comment": 50,
        "POST /rest/api/3/search/jql": calls["POST /rest/api/3/search/jql"],
    }
    # Measured 14 on every run: each prompted cycle's ticket read returns the first cycle's
    # 453 tickets (their creates are inside its window: the last read less the margin), in
    # pages of 100, besides the read-ahead of the reviews to update. A slower run finds the
    # creates outside a window (fewer searches), never more tickets than these.
    assert calls["POST /rest/api/3/search/jql"] <= 14


def _jira_update(url: str, key: str, delivery: str) -> int:
    body = json.dumps(
        {
            "timestamp": int(time.time() * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue": {"key": key, "fields": {"labels": ["slm-sync"]}},
            "changelog": {"items": [{"field": "status", "toString": "In Progress"}]},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature": sign_jira(SECRET, body),
        "X-Atlassian-Webhook-Identifier": delivery,
    }
    return requests.post(url + JIRA_PATH, data=body, headers=headers, timeout=10).status_code


def test_jira_update_of_a_review_sub_task_rereads_that_review_only(one_review: Running) -> None:
    """A review's sub-task changed in Jira: its review alone is rebuilt, nothing is read from
    ServiceNow. An issue that is no review's (the cycle's ticket) gets a whole cycle."""
    first = one_review.results[0]
    service, _ = _review(first)
    review_key = next(o.key for o in first.summary.outcomes if o.kind == "review")
    sub_task = next(
        o.ticket for o in first.summary.outcomes
        if o.ticket and o.kind != "review" and o.key != review_key
        and any(s.key == o.key and s.service_key == service for s in first.tickets)
    )  # fmt: skip
    site = one_review.site
    site.servicenow_harness.reset()
    assert _jira_update(one_review.url, str(sub_task), "j-1") == 202
    one_review.wait_runs(2)
    assert one_review.results[1].targeted == (service,)
    assert list(one_review.results[1].build.packs) == [service]
    assert site.servicenow_harness.requests()["total"] == 0
    cycle_ticket = next(
        o.ticket for o in first.summary.outcomes
        if o.ticket and not any(s.key == o.key and s.service_key for s in first.tickets)
    )  # fmt: skip
    assert _jira_update(one_review.url, str(cycle_ticket), "j-2") == 202
    one_review.wait_runs(3)
    assert one_review.results[2].targeted is None, "a whole prompted cycle"


def test_new_owner_announced_by_service_changed_reaches_the_pack(one_review: Running) -> None:
    """The service gets an owner no service named before: `service.changed` reads the service
    and that person (2 ServiceNow calls), and the review ticket names the new owner."""
    site, first = one_review.site, one_review.results[0]
    service, ticket = _review(first)
    named = {r.key for r in one_review.store.mirrored("person")}  # every person read so far
    shown = json.dumps(_issue(site, ticket)["description"])  # role holders are named too
    newcomer = next(
        p for p in site.estate.people
        if p.sys_id not in named and p.name not in shown and p.in_jira and p.jira_assignable
        and not p.jira_email_hidden and p.active
    )  # fmt: skip
    site.servicenow.clock = datetime.now(UTC)
    site.servicenow.update("cmdb_ci_service", service, owned_by=newcomer.sys_id)
    site.servicenow_harness.reset()
    assert _announce(one_review.url, {"event": "service.changed", "service": service}, "o-1") == 202
    one_review.wait_runs(2)
    assert one_review.results[1].targeted == (service,)
    assert site.servicenow_harness.requests()["total"] == 2
    assert newcomer.name in json.dumps(_issue(site, ticket)["description"])


def test_a_source_that_cannot_read_by_sys_id_gets_a_whole_prompted_cycle(
    one_review: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source plugin without `read_records`: the announced breach still wakes a cycle, a
    whole one reading the streams up to two seconds ago (what every delivery got before): a
    record stamped more than two seconds before the delivery is in it."""
    site, first = one_review.site, one_review.results[0]
    service, _ = _review(first)
    monkeypatch.setattr(one_review.daemon.engine.source, "read_records", None)
    agreements = {a.key for a in first.build.agreements if a.service_key == service}
    record = _breach(site, service, agreements)
    payload = {"event": "task_sla.breached", "service": service, "task_sla": record}
    time.sleep(3)  # past the whole cycle's two-second bound (no overlap re-read helps it)
    assert _announce(one_review.url, payload, "whole-1") == 202
    one_review.wait_runs(2)
    assert one_review.results[1].targeted is None
    assert one_review.results[1].pulled.read["sla_record"] >= 1
    mirrored = {r.key: r for r in one_review.daemon.engine.store.mirrored("sla_record")}
    assert mirrored[record].body["breached"] is True  # the breach itself, not an older copy
