"""A signed webhook wakes the daemon: the next cycle runs at once, reading up to seconds ago."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

import requests
from pydantic import SecretStr

from config.settings import WebhookSettings
from sync.daemon import Daemon
from sync.engine import Engine
from sync.health import Health, HealthServer
from sync.metrics import Metrics
from sync.webhooks import WebhookReceiver
from sync.webhooks.auth import sign_servicenow

SECRET = "sn-webhook-secret-123"


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
        headers={"X-SLM-Signature": "sha256=AAAA", "X-SLM-Timestamp": stamp},
        timeout=5,
    )
    server.stop()
    assert response.status_code == 401
    assert not daemon.pending and not daemon.wake.is_set()
