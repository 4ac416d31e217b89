"""Benchmark: requests per second the sandbox serves at zero latency.

Runs a few client threads, each with its own keep-alive session, against `python -m sandbox
serve` in its own process (so the client's own work does not share the server's interpreter):
keyset pages of 100 task_sla rows (as the connector reads them) and small single-record GETs.
Prints one JSON object: {"requests", "seconds", "requests_per_s", "by_kind", "errors", ...}.

    .venv/bin/python bench/sandbox.py [--seconds 5] [--threads 4]
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

# Run as a script, this file's folder comes first on sys.path and its name would hide the
# `sandbox` package: look in the project root instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

PAGE_FIELDS = "sys_id,task,sla,stage,has_breached,start_time,end_time,sys_updated_on"


def _client(base: str, sys_ids: list[str], deadline: float, counts: Counter[str]) -> None:
    session = requests.Session()
    session.auth = ("bench", "bench")
    cursor = ("", "")
    index = 0
    local: Counter[str] = Counter()
    while time.perf_counter() < deadline:
        if index % 2 == 0:
            stamp, sys_id = cursor
            query = "ORDERBYsys_updated_on^ORDERBYsys_id"
            if stamp:
                query = f"sys_updated_on>{stamp}^NQsys_updated_on={stamp}^sys_id>{sys_id}^{query}"
            response = session.get(
                f"{base}/api/now/table/task_sla",
                timeout=10,
                params={
                    "sysparm_query": query,
                    "sysparm_limit": "100",
                    "sysparm_fields": PAGE_FIELDS,
                    "sysparm_exclude_reference_link": "true",
                    "sysparm_no_count": "true",
                },
            )
            rows = response.json()["result"] if response.ok else []
            cursor = (rows[-1]["sys_updated_on"], rows[-1]["sys_id"]) if rows else ("", "")
            kind = "task_sla_page_100"
        else:
            sys_id = sys_ids[index % len(sys_ids)]
            response = session.get(
                f"{base}/api/now/table/incident/{sys_id}",
                timeout=10,
                params={"sysparm_fields": "sys_id,number,priority,state"},
            )
            kind = "incident_get"
        local[kind if response.ok else "errors"] += 1
        index += 1
    counts.update(local)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    estate: Any = importlib.import_module("sandbox.estate").build_estate(seed=7)
    sys_ids = [i.sys_id for i in estate.incidents[:500]]
    server = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--seed", "7"],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base = json.loads(server.stdout.readline())["servicenow"]
        counts: Counter[str] = Counter()
        deadline = time.perf_counter() + args.seconds
        started = time.perf_counter()
        threads = [
            threading.Thread(target=_client, args=(base, sys_ids, deadline, counts))
            for _ in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    total = sum(counts.values())
    print(
        json.dumps(
            {
                "benchmark": "sandbox",
                "threads": args.threads,
                "seconds": round(elapsed, 2),
                "requests": total,
                "requests_per_s": round(total / elapsed, 1),
                "by_kind": {k: v for k, v in counts.items() if k != "errors"},
                "errors": counts.get("errors", 0),
            }
        )
    )


if __name__ == "__main__":
    main()
