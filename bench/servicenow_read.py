"""Benchmark: reading 100,000 task_sla records through the ServiceNow connector.

Starts `python -m sandbox serve --sla-records N` in its own process, then reads the SLA record
stream with `ServiceNowSource` at 0 ms and at 50 ms latency (set through POST /__sandbox/knobs),
and prints one JSON object: per latency the records, requests, seconds and records/s, against
the lower bound of requests ceil(records / page size) + 1 (the last, empty page ends paging).

    .venv/bin/python bench/servicenow_read.py [--records 100000] [--page-size 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

# Run as a script, this file's folder comes first on sys.path and would hide the project's
# packages behind it: look in the project root instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from config import Settings  # noqa: E402
from connectors import Stream  # noqa: E402
from connectors.servicenow import ServiceNowSource  # noqa: E402


def _read(base: str, page_size: int) -> dict[str, Any]:
    settings = Settings(
        servicenow={
            "url": base,
            "username": "bench",
            "password": "bench",
            "page_size": page_size,
            "requests_per_second": 1000,
        }
    )
    source = ServiceNowSource.from_settings(settings)
    started = time.perf_counter()
    records = sum(len(page.records) for page in source.read(Stream.SLA_RECORDS))
    seconds = time.perf_counter() - started
    return {
        "records": records,
        "requests": source.guard.requests_made,
        "lower_bound_requests": math.ceil(records / page_size) + 1,
        "seconds": round(seconds, 2),
        "records_per_s": round(records / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--latencies", default="0,50", help="comma-separated ms")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--sla-records", str(args.records)],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    results: dict[str, Any] = {}
    try:
        assert server.stdout is not None
        base = json.loads(server.stdout.readline())["servicenow"]
        for latency in (float(x) for x in args.latencies.split(",")):
            knobs = requests.post(
                f"{base}/__sandbox/knobs", json={"latency_ms": latency}, timeout=10
            )
            knobs.raise_for_status()
            results[f"latency_{latency:g}ms"] = _read(base, args.page_size)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(json.dumps({"benchmark": "servicenow_read", "page_size": args.page_size, **results}))


if __name__ == "__main__":
    main()
