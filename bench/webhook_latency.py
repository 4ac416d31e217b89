"""Benchmark: how fast a webhook-announced breach reaches its review ticket, with shipped settings.

Per estate size (`--sizes`, default 6 and 1,000 services with 100 SLA records each): starts the
sandbox in its own process, syncs the reviews once (fast pacing, so the setup is quick), then
runs the real daemon behind its real HTTP receiver with the **shipped** settings
(`servicenow.clock_skew_seconds` 60, both systems paced at their default requests per second,
`jira.index_lag_seconds` 2, a 600 s poll interval). Per round it turns one met SLA record of a
reviewed service into a breach over ServiceNow's Table API (stamped now, inside the skew),
sends the signed `task_sla.breached` webhook our business rule sends (naming the record), and
measures the time until the review ticket's description in Jira changed. The poll interval is
long, so only the webhook explains a change within the round's timeout. Prints one JSON object:
p50 / p95 / max per size, and the ServiceNow calls and rebuilt reviews of the prompted cycles.

    .venv/bin/python bench/webhook_latency.py [--sizes 6,1000] [--rounds 20] [--timeout 30]
    .venv/bin/python bench/webhook_latency.py --sizes 6 --rounds 5     # about a minute
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from _harness import (
    SandboxProcess,
    quiet,
    sandbox_settings,
    service_keys,
    start_sandbox,
    writes,
)

from config import Settings
from config.settings import JiraSettings, ServiceNowSettings, WebhookSettings
from sync.daemon import Daemon
from sync.engine import Engine, RunResult
from sync.health import Health, HealthServer
from sync.metrics import Metrics
from sync.state import open_store
from sync.webhooks import SERVICENOW_PATH, WebhookReceiver, sign_servicenow

SECRET = "bench-webhook-secret"
SN_AUTH = ("bench", "bench-password")
JIRA_AUTH = ("bench@example.com", "bench-token")
SHIPPED_SN = ServiceNowSettings.model_fields
SHIPPED_JIRA = JiraSettings.model_fields


def main() -> int:
    """Measure each size and print the latencies as JSON."""
    args = _arguments()
    quiet()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    result = {
        "poll_interval_seconds": args.interval,
        "sizes": {str(n): _size(n, args) for n in sizes},
    }
    print(json.dumps(result, indent=2))
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="6,1000", help="services per estate, comma-separated")
    parser.add_argument("--records-per-service", type=int, default=100)
    parser.add_argument("--reviews", type=int, default=5, help="reviewed services (selection)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval", type=int, default=600, help="poll interval, seconds")
    parser.add_argument("--timeout", type=float, default=30.0, help="per round, seconds")
    return parser.parse_args()


def _size(services: int, args: argparse.Namespace) -> dict[str, Any]:
    records = services * args.records_per_service
    site = start_sandbox("--seed", "11", "--services", str(services), "--sla-records", str(records))
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            return _measure(site, Path(data_dir), services, records, args)
    finally:
        site.stop()


def _shipped(settings: Settings, interval: int) -> Settings:
    """The settings a deployment ships with, pointed at the sandbox."""
    shipped = settings.model_copy(deep=True)
    for name in ("clock_skew_seconds", "requests_per_second"):
        setattr(shipped.servicenow, name, SHIPPED_SN[name].default)
    for name in ("index_lag_seconds", "requests_per_second"):
        setattr(shipped.jira, name, SHIPPED_JIRA[name].default)
    shipped.sync.interval_seconds = interval
    shipped.webhooks = WebhookSettings.model_validate(
        {"enabled": True, "servicenow_secret": SECRET}
    )
    return shipped


def _measure(
    site: SandboxProcess, data_dir: Path, services: int, records: int, args: argparse.Namespace
) -> dict[str, Any]:
    selection = service_keys(site, min(args.reviews, services))
    fast = sandbox_settings(site, data_dir, selection=selection)
    store = open_store(fast.sync.resolved_state_url())
    started = time.perf_counter()
    first = Engine.from_settings(fast, store).run_once()
    setup_s = round(time.perf_counter() - started, 1)
    reviews = {
        s.service_key: o.ticket
        for o in first.summary.outcomes
        for s in first.tickets
        if o.kind == "review" and o.ticket and s.key == o.key and s.service_key
    }
    agreements = {
        key: {a.key for a in first.build.agreements if a.service_key == key} for key in reviews
    }
    candidates = {key: _met_records(site, agreements[key]) for key in reviews}
    settings = _shipped(fast, args.interval)
    engine = Engine.from_settings(settings, store)
    prompted: list[RunResult] = []
    with _daemon(engine, settings, prompted) as url:
        rounds = []
        for n in range(args.rounds):
            service = list(reviews)[n % len(reviews)]
            if not candidates[service]:
                continue
            site.reset_counts()
            before = len(prompted)
            record = candidates[service].pop()
            latency, status = _round(site, url, str(reviews[service]), record, n, args.timeout)
            _wait_for(prompted, before + 1, args.timeout)  # its last writes (chart) done
            counts = site.counts()
            rounds.append(
                {
                    "webhook_status": status,
                    "latency_seconds": latency,
                    "prompted_cycles": len(prompted) - before,
                    "reviews_rebuilt": [len(r.build.packs) for r in prompted[before:]],
                    # reads only: the bench's own PATCH (the breach) is left out
                    "servicenow_reads": counts["servicenow"]["by_method"].get("GET", 0),
                    "jira_writes": writes(counts["jira"]),
                }
            )
    store.close()
    latencies = sorted(r["latency_seconds"] for r in rounds if r["latency_seconds"] is not None)
    return {
        "services": services,
        "sla_records": records,
        "reviews": len(reviews),
        "setup_seconds": setup_s,
        "settings": {
            "servicenow.clock_skew_seconds": settings.servicenow.clock_skew_seconds,
            "servicenow.requests_per_second": settings.servicenow.requests_per_second,
            "jira.requests_per_second": settings.jira.requests_per_second,
            "jira.index_lag_seconds": settings.jira.index_lag_seconds,
        },
        "reached": f"{len(latencies)}/{len(rounds)}",
        "p50_seconds": _quantile(latencies, 0.50),
        "p95_seconds": _quantile(latencies, 0.95),
        "max_seconds": round(latencies[-1], 3) if latencies else None,
        "rounds": rounds,
    }


def _wait_for(runs: list[RunResult], count: int, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while len(runs) < count and time.perf_counter() < deadline:
        time.sleep(0.02)


def _quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted `values` (the max for p95 of under 20 rounds)."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    rank = max(0, min(len(values) - 1, round(q * len(values) + 0.5) - 1))
    return round(values[rank] if q != 0.5 else statistics.median(values), 3)


def _met_records(site: SandboxProcess, agreements: set[str]) -> list[str]:
    """Completed, met SLA records of these agreements in the trailing year (to breach)."""
    recent = (datetime.now(UTC) - timedelta(days=300)).strftime("%Y-%m-%d %H:%M:%S")
    found: list[str] = []
    for agreement in sorted(agreements):
        response = requests.get(
            f"{site.servicenow_url}/api/now/table/task_sla",
            params={
                "sysparm_query": f"sla={agreement}^has_breached=false^stage=completed"
                f"^start_time>{recent}",
                "sysparm_fields": "sys_id",
                "sysparm_limit": "50",
            },
            auth=SN_AUTH,
            timeout=60,
        )
        response.raise_for_status()
        found += [row["sys_id"] for row in response.json()["result"]]
    return found


def _round(
    site: SandboxProcess, url: str, ticket: str, record: str, n: int, timeout: float
) -> tuple[float | None, int]:
    before = _description(site, ticket)
    service_of = requests.patch(
        f"{site.servicenow_url}/api/now/table/task_sla/{record}",
        json={"has_breached": "true", "stage": "breached"},
        params={"sysparm_fields": "task.business_service"},
        auth=SN_AUTH,
        timeout=30,
    )
    service_of.raise_for_status()
    service = _service(service_of.json()["result"])
    body = json.dumps(
        {"event": "task_sla.breached", "service": service, "table": "task_sla",
         "record": record, "task_sla": record}
    ).encode()  # fmt: skip
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-SLM-Signature": sign_servicenow(SECRET, stamp, body),
        "X-SLM-Timestamp": stamp,
        "X-SLM-Delivery": f"bench-{n}-{record}",
    }
    started = time.perf_counter()
    status = requests.post(url + SERVICENOW_PATH, data=body, headers=headers, timeout=5)
    while time.perf_counter() - started < timeout:
        if _description(site, ticket) != before:
            return round(time.perf_counter() - started, 3), status.status_code
        time.sleep(0.02)
    return None, status.status_code


def _service(row: dict[str, Any]) -> str:
    value = row.get("task.business_service")
    if isinstance(value, dict):
        value = value.get("value")
    return str(value or "")


def _description(site: SandboxProcess, ticket: str) -> str:
    response = requests.get(
        f"{site.jira_url}/rest/api/3/issue/{ticket}",
        params={"fields": "description"},
        auth=JIRA_AUTH,
        timeout=10,
    )
    response.raise_for_status()
    return json.dumps(response.json()["fields"]["description"], sort_keys=True)


@contextmanager
def _daemon(engine: Engine, settings: Settings, prompted: list[RunResult]) -> Iterator[str]:
    """The daemon behind its HTTP server; its prompted runs are collected in `prompted`."""
    interval = float(settings.sync.interval_seconds)
    health, metrics = Health(interval_seconds=interval), Metrics()
    run_prompted = engine.run_prompted

    def recorded(work: Any, *, dry_run: bool = False) -> RunResult:
        result = run_prompted(work, dry_run=dry_run)
        prompted.append(result)
        return result

    engine.run_prompted = recorded  # type: ignore[method-assign]
    daemon = Daemon(engine=engine, interval=interval, health=health, metrics=metrics)
    receiver = WebhookReceiver(settings.webhooks, daemon.enqueue)
    server = HealthServer(health, metrics, host="127.0.0.1", port=0, webhooks=receiver).start()
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    while health.last_success is None:  # the daemon's own first (whole) cycle does not count
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        daemon.stop.set()
        daemon.wake.set()
        thread.join(timeout=120)
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
