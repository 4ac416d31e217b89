"""Benchmark: peak memory (RSS) of one full sync for 100,000 and for 1,000,000 SLA records.

For each size, starts the sandbox in its own process, then runs one cold sync in a fresh child
process (`bench/memory.py --child ...`) that reports its own peak RSS (`resource.getrusage`), so
neither the sandbox nor an earlier size is counted. A streaming sync needs nearly the same memory
for both sizes. Prints one JSON object. The 1,000,000 run needs several minutes and about 2 GB for
the sandbox; `--quick` measures 10,000 vs 100,000 instead.

    .venv/bin/python bench/memory.py [--sizes 100000,1000000] [--quick] [--services 50]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its names (mapping.py) would
# hide the project's packages: look in the project root instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from bench._harness import quiet, sandbox_settings, service_keys, start_sandbox  # noqa: E402
from sync.engine import Engine  # noqa: E402
from sync.state import open_store  # noqa: E402


def _child(jira: str, servicenow: str, selection: list[str]) -> dict[str, Any]:
    """One cold sync in this process; its peak RSS and what it read."""
    quiet()
    site: Any = type("Site", (), {"jira_url": jira, "servicenow_url": servicenow})
    with tempfile.TemporaryDirectory() as tmp:
        settings = sandbox_settings(site, Path(tmp), selection=selection)
        store = open_store(settings.sync.resolved_state_url())
        started = time.perf_counter()
        result = Engine.from_settings(settings, store).run_once(full=True).as_json()
        seconds = time.perf_counter() - started
        store.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "seconds": round(seconds, 1),
        "sla_records_read": result["records_read"].get("sla_record", 0),
        "created": result["created"],
        "failed": result["failed"],
    }


def _measure(records: int, services: int, reviews: int) -> dict[str, Any]:
    site = start_sandbox("--services", str(services), "--sla-records", str(records),
                         "--index-lag-ms", "0")  # fmt: skip
    try:
        selection = ",".join(service_keys(site, reviews))
        done = subprocess.run(
            [sys.executable, str(HERE / "memory.py"), "--child", site.jira_url,
             site.servicenow_url, selection],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        site.stop()
    return {"sla_records": records, "sandbox_start_s": site.started_s, **json.loads(done.stdout)}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        jira, servicenow, selection = sys.argv[2:5]
        print(json.dumps(_child(jira, servicenow, selection.split(","))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--quick", action="store_true", help="10,000 vs 100,000 records")
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--reviews", type=int, default=5)
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    runs = [_measure(n, args.services, args.reviews) for n in sizes]
    small, large = runs[0], runs[-1]
    print(json.dumps({
        "benchmark": "memory",
        "services": args.services,
        "runs": runs,
        "records_ratio": round(large["sla_records"] / small["sla_records"], 1),
        "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
