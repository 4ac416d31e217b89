"""Benchmark: a cold full sync of 1,000 services and 100,000 SLA records, under latency and limits.

Starts the sandbox in its own process with 1,000 services and 100,000 task_sla records, 50 ms
latency per request and rate limits (default `servicenow=20/1s,jira=10/1s`: ServiceNow has no
limit out of the box, instances set rate-limit rules per user and hour, and 20/s = 72,000/h is a
generous integration-user rule; Jira Cloud limits by cost per user, and about 10 simple requests
per second is what a single user account sustains without 429s). slm-sync paces itself at the
same rates. One full sync (pull, review, create the cycle and the selected services' reviews)
runs in this process. Prints one JSON object: wall time, calls per system, and next to them the
time the calls alone need at the rate limit and at the latency (one request at a time).

    .venv/bin/python bench/cold_sync.py [--services 1000] [--sla-records 100000] \
        [--latency-ms 50] [--rate-limit servicenow=20/1s,jira=10/1s] [--reviews 20] [--read-alone]

`--read-alone` then reads the same streams again with a new source, nothing mapped or stored,
and reports its CPU: the floor the client libraries set under the end-to-end rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its names (mapping.py) would
# hide the project's packages: look in the project root instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import sync.engine  # noqa: E402
from bench._harness import quiet, sandbox_settings, service_keys, start_sandbox, writes  # noqa: E402
from sync.engine import Engine, source_mappings  # noqa: E402
from sync.pull import PULL_ORDER  # noqa: E402
from sync.state import open_store  # noqa: E402


def _timed_pull(times: dict[str, float]) -> None:
    """Time the engine's pull apart (wall, and CPU of this process: the pull's read-ahead
    threads included) to tell it from building and writing the reviews."""
    original = sync.engine.pull

    def pull(*args: Any, **kwargs: Any) -> Any:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            times["wall"] = time.perf_counter() - started
            times["cpu"] = time.process_time() - cpu_started

    sync.engine.pull = pull  # type: ignore[assignment]


def _rates(spec: str) -> dict[str, float]:
    rates = {}
    for part in spec.split(","):
        system, limit = part.split("=")
        count, period = limit.split("/")
        rates[system.strip()] = float(count) / float(period.rstrip("s") or 1)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--sla-records", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--rate-limit", default="servicenow=20/1s,jira=10/1s")
    parser.add_argument("--reviews", type=int, default=20, help="services selected for review")
    parser.add_argument(
        "--read-alone", action="store_true", help="also time the source's read with no processing"
    )
    args = parser.parse_args()
    rates = _rates(args.rate_limit)
    quiet()
    site = start_sandbox("--services", str(args.services), "--sla-records", str(args.sla_records),
                         "--index-lag-ms", "300")  # fmt: skip
    try:
        selection = service_keys(site, args.reviews)
        site.knobs(latency_ms=args.latency_ms, rate_limit=args.rate_limit)
        site.reset_counts()
        with tempfile.TemporaryDirectory() as tmp:
            settings = sandbox_settings(site, Path(tmp), selection=selection)
            settings.servicenow.requests_per_second = rates["servicenow"]
            settings.jira.requests_per_second = rates["jira"]
            store = open_store(settings.sync.resolved_state_url())
            pull_times: dict[str, float] = {}
            _timed_pull(pull_times)
            started, cpu_started = time.perf_counter(), time.process_time()
            sandbox_started = site.cpu_s()
            result = Engine.from_settings(settings, store).run_once(full=True)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            sandbox_cpu = site.cpu_s() - sandbox_started
            store.close()
            counts = site.counts()
            floor = _read_alone(settings) if args.read_alone else {}
    finally:
        site.stop()
    report = _report(args, rates, (wall, cpu), counts, result.as_json(), site.started_s)
    figures = {**report, **_pull_figures(pull_times, report["records_read"]), **floor}
    # the stand-ins' own work in the same run (their process, the other core of two)
    figures["sandbox_cpu_s"] = round(sandbox_cpu, 1)
    print(json.dumps(figures))


def _read_alone(settings: Any) -> dict[str, Any]:
    """The same streams read again by a new source with nothing mapped, stored or built:
    the CPU the connector's reading alone takes (HTTP, JSON, the client libraries), a floor
    under the end-to-end rate that no work of ours can go below."""
    chosen, mappings = source_mappings(settings)
    assert chosen.source is not None
    source = chosen.source(settings)
    streams = [s for s in PULL_ORDER if mappings.has(s.value)]
    prepare = getattr(source, "prepare", None)
    if callable(prepare):
        prepare(dict.fromkeys(streams), until=None)
    started, cpu_started = time.perf_counter(), time.process_time()
    sla = 0
    for stream in streams:
        for page in source.read(stream, since=None, until=None):
            sla += len(page.records) if stream.value == "sla_record" else 0
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "read_alone_wall_s": round(wall, 1),
        "read_alone_cpu_s": round(cpu, 1),
        "read_alone_sla_records_per_cpu_s": round(sla / cpu) if cpu else None,
    }


def _pull_figures(times: dict[str, float], read: dict[str, int]) -> dict[str, Any]:
    """The pull alone: wall, CPU, SLA records per second of each."""
    wall, cpu = times.get("wall", 0.0), times.get("cpu", 0.0)
    sla = read.get("sla_record", 0)
    return {
        "pull_wall_s": round(wall, 1),
        "pull_cpu_s": round(cpu, 1),
        "pull_sla_records_per_s": round(sla / wall) if wall else None,
        "pull_sla_records_per_cpu_s": round(sla / cpu) if cpu else None,
    }


def _report(
    args: argparse.Namespace, rates: dict[str, float], times: tuple[float, float],
    counts: dict[str, dict[str, Any]], summary: dict[str, Any], sandbox_start_s: float,
) -> dict[str, Any]:  # fmt: skip
    calls = {system: c["total"] for system, c in counts.items()}
    limited = {s: c["by_route"] for s, c in counts.items()}
    rate_bound = sum(calls[s] / rates[s] for s in calls)
    wall, cpu = times
    sla_records = summary["records_read"].get("sla_record", 0)
    return {
        "benchmark": "cold_sync",
        "services": args.services,
        "sla_records": args.sla_records,
        "latency_ms": args.latency_ms,
        "rate_limit": args.rate_limit,
        "reviews_selected": args.reviews,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),  # this process (the sandbox runs in its own)
        "sla_records_per_s": round(sla_records / wall) if wall else None,
        "wall_over_rate_floor": round(wall / rate_bound, 2) if rate_bound else None,
        "calls": calls,
        "writes": {s: writes(c) for s, c in counts.items()},
        "calls_alone_at_rate_limit_s": round(rate_bound, 1),
        "calls_alone_at_latency_s": round(sum(calls.values()) * args.latency_ms / 1000, 1),
        "records_read": summary["records_read"],
        "tickets": {k: summary[k] for k in ("created", "updated", "unchanged", "failed")},
        "routes": limited,
        "sandbox_start_s": sandbox_start_s,
    }


if __name__ == "__main__":
    main()
