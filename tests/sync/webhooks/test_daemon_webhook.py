"""A signed webhook wakes the daemon: the next cycle runs at once, reading up to seconds ago."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from structlog.testing import capture_logs

from config.settings import WebhookSettings
from sync.daemon import Daemon
from sync.engine import Engine
from sync.health import Health, HealthServer
from sync.metrics import Metrics
from sync.webhooks import JIRA_PATH, SERVICENOW_PATH, WebhookReceiver, WorkItem
from sync.webhooks.auth import sign_jira, sign_servicenow

SECRET = "sn-webhook-secret-123"
JIRA_SECRET = "jira-webhook-secret-456"


@dataclass
class _Result:
    summary: Any


@dataclass
class RecordingEngine:
    """Stands in for the engine: records each run and whether a webhook prompted it."""

    runs: list[bool] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    ran: threading.Event = field(default_factory=threading.Event)

    def run_once(self, *, prompt: bool = False) -> _Result:
        from sync.reconcile import ApplySummary

        self.runs.append(prompt)
        self.ran.set()
        return _Result(ApplySummary())

    def run_prompted(self, work: tuple[Any, ...]) -> _Result:
        return self.run_once(prompt=True)


def test_signed_servicenow_webhook_runs_a_prompt_cycle_without_waiting() -> None:
    """With an hour's interval, a breach webhook gets a cycle within seconds (prompt=True)."""
    engine = RecordingEngine()
    health, metrics = Health(interval_seconds=3600), Metrics()
    daemon = Daemon(cast(Engine, engine), 3600, health, metrics, max_cycles=2)
    settings = WebhookSettings(enabled=True, servicenow_secret=SecretStr(SECRET))
    receiver = WebhookReceiver(settings, daemon.enqueue)
    server = HealthServer(health, metrics, host="127.0.0.1", port=0, webhooks=receiver).start()
    loop = threading.Thread(target=daemon.run, daemon=True)
    loop.start()
    assert engine.ran.wait(5)
    engine.ran.clear()
    body = json.dumps(
        {"event": "task_sla.breached", "service": "a" * 32, "task_sla": "b" * 32}
    ).encode()
    stamp = str(int(time.time()))
    response = requests.post(
        f"http://127.0.0.1:{server.port}/webhooks/servicenow",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-SLM-Signature": sign_servicenow(SECRET, stamp, body),
            "X-SLM-Timestamp": stamp,
            "X-SLM-Delivery": "delivery-1",
        },
        timeout=5,
    )
    assert response.status_code == 202, response.text
    assert engine.ran.wait(5), "the webhook did not wake the daemon"
    loop.join(timeout=5)
    server.stop()
    assert engine.runs == [False, True]


def test_bad_signature_changes_nothing() -> None:
    """A webhook with a wrong signature is 401 and queues no work."""
    engine = RecordingEngine()
    health, metrics = Health(interval_seconds=3600), Metrics()
    daemon = Daemon(cast(Engine, engine), 3600, health, metrics)
    settings = WebhookSettings(enabled=True, servicenow_secret=SecretStr(SECRET))
    server = HealthServer(
        health, metrics, host="127.0.0.1", port=0,
        webhooks=WebhookReceiver(settings, daemon.enqueue),
    ).start()  # fmt: skip
    stamp = str(int(time.time()))
    response = requests.post(
        f"http://127.0.0.1:{server.port}/webhooks/servicenow",
        data=b'{"event": "service.changed", "service": "x"}',
        headers={
            "Content-Type": "application/json",
            "X-SLM-Signature": "sha256=AAAA",
            "X-SLM-Timestamp": stamp,
        },
        timeout=5,
    )
    server.stop()
    assert response.status_code == 401
    assert not daemon.pending and not daemon.wake.is_set()


@dataclass
class Served:
    """A daemon (not looping) behind the real HTTP surface, both webhook endpoints on."""

    url: str
    daemon: Daemon
    metrics: Metrics

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        return requests.post(f"{self.url}{path}", data=body, headers=headers, timeout=5)

    def rejections(self) -> dict[tuple[str, str], float]:
        """slm_sync_webhook_rejections_total as scraped from /metrics, by (source, reason)."""
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        return {
            (sample.labels["source"], sample.labels["reason"]): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "slm_sync_webhook_rejections_total"
        }


def _serve(clock: Callable[[], float] = time.time) -> Iterator[Served]:
    health, metrics = Health(interval_seconds=3600), Metrics()
    daemon = Daemon(cast(Engine, RecordingEngine()), 3600, health, metrics)
    settings = WebhookSettings(
        enabled=True, servicenow_secret=SecretStr(SECRET), jira_secret=SecretStr(JIRA_SECRET)
    )
    receiver = WebhookReceiver(settings, daemon.enqueue, clock=clock)
    server = HealthServer(health, metrics, host="127.0.0.1", port=0, webhooks=receiver).start()
    try:
        yield Served(f"http://127.0.0.1:{server.port}", daemon, metrics)
    finally:
        server.stop()


@pytest.fixture
def served() -> Iterator[Served]:
    yield from _serve()


@pytest.fixture
def frozen() -> Iterator[Served]:
    """Served with the receiver's clock frozen: the log allowance never renews mid-test."""
    yield from _serve(clock=lambda: 1_750_000_000.0)


def _jira_update(key: str) -> bytes:
    return json.dumps(
        {
            "timestamp": int(time.time() * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue": {"key": key, "fields": {"labels": ["slm-sync"]}},
            "changelog": {"items": [{"field": "status", "toString": "In Progress"}]},
        }
    ).encode()


def _jira_headers(signature: str, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature": signature,
        "X-Atlassian-Webhook-Identifier": delivery,
    }


def test_respelled_jira_signature_with_a_new_delivery_id_is_refused(served: Served) -> None:
    """Over HTTP: a captured Jira signature re-encoded under a fresh delivery id never queues."""
    body = _jira_update("SLM-12")
    signature = sign_jira(JIRA_SECRET, body)
    digest = bytes.fromhex(signature.removeprefix("sha256="))
    assert served.post(JIRA_PATH, body, _jira_headers(signature, "d-1")).status_code == 202
    respelled = [
        "sha256=" + digest.hex().upper(),
        "SHA256=" + digest.hex(),
        "sha256=" + base64.b64encode(digest).decode(),
        "sha256=" + base64.b64encode(digest).decode().rstrip("="),
    ]
    for n, forged in enumerate(respelled):
        response = served.post(JIRA_PATH, body, _jira_headers(forged, f"forged-{n}"))
        assert response.status_code == 401, forged
    replay = served.post(JIRA_PATH, body, _jira_headers(signature, "forged-again"))
    assert (replay.status_code, replay.text) == (200, "duplicate delivery ignored\n")
    assert [item.key for item in served.daemon.pending] == ["SLM-12"]
    assert served.rejections() == {
        ("jira", "malformed_signature"): 4.0,
        ("jira", "duplicate"): 1.0,
    }


def test_servicenow_digest_sent_again_in_hex_is_a_replay(served: Served) -> None:
    """Over HTTP: the business rule's base64 signature resent as hex, new delivery id: 200 dup."""
    body = json.dumps({"event": "task_sla.breached", "service": "a" * 32}).encode()
    stamp = str(int(time.time()))
    signature = sign_servicenow(SECRET, stamp, body)
    as_hex = "sha256=" + base64.b64decode(signature.removeprefix("sha256=")).hex()
    answers = []
    for delivery, spelled in [("sn-1", signature), ("sn-2", as_hex), ("sn-3", as_hex.upper())]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-SLM-Signature": spelled,
            "X-SLM-Timestamp": stamp,
            "X-SLM-Delivery": delivery,
        }
        answers.append(served.post(SERVICENOW_PATH, body, headers).status_code)
    assert answers == [202, 200, 401]
    assert len(served.daemon.pending) == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_signed_body_with_wrong_content_type_gets_415_over_http(
    served: Served, content_type: str
) -> None:
    """Over HTTP: a correctly signed body sent as another media type is refused with 415 JSON."""
    body = _jira_update("SLM-12")
    headers = _jira_headers(sign_jira(JIRA_SECRET, body), "d-1") | {"Content-Type": content_type}
    response = served.post(JIRA_PATH, body, headers)
    assert response.status_code == 415
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "unsupported media type"
    assert not served.daemon.pending
    assert served.rejections() == {("jira", "unsupported_media_type"): 1.0}


def test_two_thousand_unauthenticated_requests_are_counted_not_logged(frozen: Served) -> None:
    """2,000 unauthenticated requests over HTTP: the counter says 2,000, the log a handful."""
    stamp = "1750000000"
    kinds = [
        (JIRA_PATH, {"Content-Type": "application/json"}),
        (JIRA_PATH, {"Content-Type": "application/json", "X-Hub-Signature": "sha256=" + "0" * 64}),
        (
            SERVICENOW_PATH,
            {
                "Content-Type": "application/json",
                "X-SLM-Signature": "sha256=" + "A" * 43 + "=",
                "X-SLM-Timestamp": stamp,
            },
        ),
        (SERVICENOW_PATH, {"Content-Type": "text/plain"}),
    ]

    def attack(n: int) -> int:
        path, headers = kinds[n % len(kinds)]
        return frozen.post(path, b'{"event": "service.changed"}', headers).status_code

    with capture_logs() as logs, ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attack, range(2000)))
    assert sorted(set(statuses)) == [401, 415]
    counted = frozen.rejections()
    assert sum(counted.values()) == 2000
    assert counted == {
        ("jira", "missing_signature"): 500.0,
        ("jira", "bad_signature"): 500.0,
        ("servicenow", "bad_signature"): 500.0,
        ("servicenow", "unsupported_media_type"): 500.0,
    }
    assert len(logs) == 4, logs  # one per source and reason
    assert not frozen.daemon.pending


@dataclass
class GatedEngine:
    """Records what each run was asked for; a prompted run waits for `release`."""

    runs: list[tuple[str, ...]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    finished: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def run_once(self, *, prompt: bool = False) -> _Result:
        from sync.reconcile import ApplySummary

        self.runs.append(("poll",))
        self.finished.release()
        return _Result(ApplySummary())

    def run_prompted(self, work: tuple[Any, ...]) -> _Result:
        from sync.reconcile import ApplySummary

        self.started.set()
        assert self.release.wait(10)
        self.runs.append(tuple(item.key for item in work))
        self.finished.release()
        return _Result(ApplySummary())


def _signed_breach(service: str, record: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {"event": "task_sla.breached", "service": service, "task_sla": record}
    ).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-SLM-Signature": sign_servicenow(SECRET, stamp, body),
        "X-SLM-Timestamp": stamp,
        "X-SLM-Delivery": record,
    }
    return body, headers


def test_deliveries_during_a_cycle_are_merged_into_the_next_one() -> None:
    """Over HTTP: three breaches arriving while a prompted cycle runs make one next cycle with
    all three (none lost, no cycle each), and no whole cycle in between."""
    engine = GatedEngine()
    health, metrics = Health(interval_seconds=3600), Metrics()
    daemon = Daemon(cast(Engine, engine), 3600, health, metrics, max_cycles=3)
    settings = WebhookSettings(enabled=True, servicenow_secret=SecretStr(SECRET))
    receiver = WebhookReceiver(settings, daemon.enqueue)
    server = HealthServer(health, metrics, host="127.0.0.1", port=0, webhooks=receiver).start()
    url = f"http://127.0.0.1:{server.port}{SERVICENOW_PATH}"
    loop = threading.Thread(target=daemon.run, daemon=True)
    loop.start()
    try:
        assert engine.finished.acquire(timeout=10)  # the first, whole cycle
        first = _signed_breach("a" * 32, "1" * 32)
        assert requests.post(url, data=first[0], headers=first[1], timeout=5).status_code == 202
        assert engine.started.wait(10)
        during = [_signed_breach(c * 32, str(n) * 32) for n, c in ((2, "b"), (3, "c"), (4, "d"))]
        for body, headers in during:
            assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 202
        engine.release.set()
        loop.join(timeout=10)
    finally:
        daemon.stop.set()
        daemon.wake.set()
        server.stop()
    assert engine.runs == [("poll",), ("1" * 32,), ("2" * 32, "3" * 32, "4" * 32)]
    assert not daemon.pending


def test_webhooks_never_postpone_the_poll() -> None:
    """A prompted cycle when the poll is due is followed by the whole cycle at once; before it
    is due, a prompted cycle runs alone."""
    engine = GatedEngine()
    engine.release.set()
    daemon = Daemon(cast(Engine, engine), 3600, Health(interval_seconds=3600), Metrics())
    daemon.cycle()  # the first cycle is a whole one
    daemon.enqueue(WorkItem("servicenow", "service", "a" * 32, 0.0))
    daemon.cycle()
    assert engine.runs == [("poll",), ("a" * 32,)]
    daemon.enqueue(WorkItem("servicenow", "service", "b" * 32, 0.0))
    daemon._next_poll = time.monotonic() - 1  # the interval has passed meanwhile
    daemon.cycle()
    assert engine.runs[2:] == [("b" * 32,), ("poll",)]
