"""Benchmark: how fast a webhook-driven change reaches its ticket, against the poll interval.

Starts the in-process sandbox, syncs one review once, then per round turns one of the service's
met SLA records into a breach in ServiceNow, sends the signed `task_sla.breached` webhook our
business rule would send to `POST /webhooks/servicenow`, and measures the time until the review
ticket's description in Jira changed. The poll interval is long (default 600 s), so only the
webhook can explain a change within the round's timeout. Prints one JSON object.

Wiring: when `sync.health.HealthServer` accepts `webhooks=` and `sync.daemon.Daemon` has a
`wake` event, the bench runs the real daemon behind the real HTTP server ("wiring": "daemon").
Otherwise it drives `WebhookReceiver` behind a werkzeug server and a minimal loop that waits on
the poll interval or a webhook ("wiring": "bench-loop"), which is what the daemon must do.

    .venv/bin/python bench/webhook_latency.py [--rounds 5] [--interval 600] [--timeout 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from config import Settings  # noqa: E402
from connectors import set_testing  # noqa: E402
from sandbox import Sandbox  # noqa: E402
from sync.demo import demo_settings  # noqa: E402
from sync.engine import Engine  # noqa: E402
from sync.logs import configure_logging  # noqa: E402
from sync.state import open_store  # noqa: E402
from sync.webhooks import SERVICENOW_PATH, WebhookReceiver, WorkItem, sign_servicenow  # noqa: E402

SECRET = "bench-webhook-secret"
AUTH = ("slm-demo", "demo-api-token")


def main() -> int:
    """Run the rounds and print the latencies as JSON."""
    args = _arguments()
    set_testing(True)
    configure_logging(level="WARNING")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    site = Sandbox(seed=11, services=6, sla_records=1500, index_lag_ms=200).start()
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            result = _measure(site, _settings(site, Path(data_dir), args.interval), args)
    finally:
        site.stop()
    print(json.dumps(result, indent=2))
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=int, default=600, help="poll interval, seconds")
    parser.add_argument("--timeout", type=float, default=30.0, help="per round, seconds")
    return parser.parse_args()


def _settings(site: Sandbox, data_dir: Path, interval: int) -> Settings:
    settings = demo_settings(site, data_dir)
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.3
    settings.sync.interval_seconds = interval
    settings.webhooks = type(settings.webhooks).model_validate(
        {"enabled": True, "servicenow_secret": SECRET, "jira_secret": SECRET}
    )
    return settings


def _measure(site: Sandbox, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    store = open_store(settings.sync.resolved_state_url())
    probe = Engine.from_settings(settings, store).run_once(dry_run=True)
    service = probe.build.candidates[0].service_key
    settings.review.selection = [service]
    engine = Engine.from_settings(settings, store)
    first = engine.run_once()
    review = next(o.ticket for o in first.summary.outcomes if o.kind == "review" and o.ticket)
    agreements = {a.key for a in first.build.agreements if a.service_key == service}
    with _wiring(engine, settings) as (wiring, url):
        rounds = [
            _round(site, url, service, review, agreements, args.timeout) for _ in range(args.rounds)
        ]
    store.close()
    latencies = [r["latency_seconds"] for r in rounds if r["latency_seconds"] is not None]
    return {
        "wiring": wiring,
        "poll_interval_seconds": args.interval,
        "rounds": rounds,
        "reached": f"{len(latencies)}/{len(rounds)}",
        "median_latency_seconds": round(statistics.median(latencies), 3) if latencies else None,
        "max_latency_seconds": round(max(latencies), 3) if latencies else None,
        "expected_without_webhooks_seconds": args.interval / 2,
    }


def _round(
    site: Sandbox, url: str, service: str, ticket: str, agreements: set[str], timeout: float
) -> dict[str, Any]:
    before = _description(site, ticket)
    record = _breach_one(site, agreements)
    body = json.dumps(
        {"event": "task_sla.breached", "table": "task_sla", "record": record, "service": service}
    ).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-SLM-Signature": sign_servicenow(SECRET, stamp, body),
        "X-SLM-Timestamp": stamp,
        "X-SLM-Delivery": record,
    }
    started = time.perf_counter()
    status = requests.post(url + SERVICENOW_PATH, data=body, headers=headers, timeout=5)
    latency = _wait_for_change(site, ticket, before, started, timeout)
    return {"webhook_status": status.status_code, "latency_seconds": latency}


def _breach_one(site: Sandbox, agreements: set[str]) -> str:
    """Turn one met SLA record of the service into a breach, stamped a few seconds ago."""
    recent = datetime.now(UTC) - timedelta(days=300)  # well inside the trailing 12 months
    record = next(
        r
        for r in site.estate.sla_records
        if r.sla in agreements
        and not r.has_breached
        and r.stage == "completed"
        and r.start_time > recent
    )
    record.has_breached = True  # the estate is the bench's memory of what it already breached
    # ServiceNow stamps to the second and keyset cursors order by (second, sys_id): a row
    # written in the second of the last cursor with a smaller sys_id would be skipped with
    # clock_skew_seconds 0. Start each breach in a fresh second, as real time would be.
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    site.servicenow.clock = datetime.now(UTC)
    site.servicenow.update("task_sla", record.sys_id, has_breached="true", stage="breached")
    return str(record.sys_id)


def _description(site: Sandbox, ticket: str) -> str:
    response = requests.get(
        f"{site.jira_url}/rest/api/3/issue/{ticket}",
        params={"fields": "description"},
        auth=AUTH,
        timeout=5,
    )
    response.raise_for_status()
    return json.dumps(response.json()["fields"]["description"], sort_keys=True)


def _wait_for_change(
    site: Sandbox, ticket: str, before: str, started: float, timeout: float
) -> float | None:
    while time.perf_counter() - started < timeout:
        if _description(site, ticket) != before:
            return round(time.perf_counter() - started, 3)
        time.sleep(0.02)
    return None


@contextmanager
def _wiring(engine: Engine, settings: Settings) -> Iterator[tuple[str, str]]:
    """The daemon behind its HTTP server if the lead's wiring exists, else the bench loop."""
    if _daemon_wiring_exists():
        with _daemon(engine, settings) as url:
            yield "daemon", url
    else:
        with _bench_loop(engine, settings) as url:
            yield "bench-loop", url


def _daemon_wiring_exists() -> bool:
    from sync.daemon import Daemon
    from sync.health import HealthServer

    has_webhooks = "webhooks" in inspect.signature(HealthServer).parameters
    has_wake = "wake" in {f.name for f in dataclasses.fields(Daemon)}
    return has_webhooks and has_wake


@contextmanager
def _daemon(engine: Engine, settings: Settings) -> Iterator[str]:
    from sync.daemon import Daemon
    from sync.health import Health, HealthServer
    from sync.metrics import Metrics

    interval = float(settings.sync.interval_seconds)
    health, metrics = Health(interval_seconds=interval), Metrics()
    # Typed loosely: written before the lead's wiring (Daemon.wake, HealthServer(webhooks=)).
    daemon: Any = Daemon(engine=engine, interval=interval, health=health, metrics=metrics)
    enqueue: Callable[[WorkItem], None] = getattr(daemon, "enqueue", None) or (
        lambda item: daemon.wake.set()
    )
    receiver = WebhookReceiver(settings.webhooks, enqueue)
    server_type: Any = HealthServer
    server = server_type(health, metrics, host="127.0.0.1", port=0, webhooks=receiver).start()
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    while health.last_success is None:  # the daemon's own first cycle must not count
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        daemon.stop.set()
        daemon.wake.set()
        thread.join(timeout=30)
        server.stop()


@contextmanager
def _bench_loop(engine: Engine, settings: Settings) -> Iterator[str]:
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    wake, stop = threading.Event(), threading.Event()

    def enqueue(item: WorkItem) -> None:
        wake.set()

    def loop() -> None:
        while not stop.is_set():
            wake.wait(settings.sync.interval_seconds)
            wake.clear()  # before the run: a webhook arriving during it triggers another
            if not stop.is_set():
                engine.run_once()

    receiver = WebhookReceiver(settings.webhooks, enqueue)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = (
            receiver.respond(request)
            if request.path.startswith("/webhooks/")
            else Response("not found\n", status=404)
        )
        return response(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threads = [threading.Thread(target=f, daemon=True) for f in (loop, server.serve_forever)]
    for thread in threads:
        thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        stop.set()
        wake.set()
        server.shutdown()
        for thread in threads:
            thread.join(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
