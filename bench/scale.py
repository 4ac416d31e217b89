"""Benchmark: does a cold sync grow linearly with the estate? Same run, growing sizes.

Runs `bench/cold_sync.py` once per size in its own process (a fresh sandbox and state store
each), with no latency and no rate limit, so what is measured is our own work: 100 SLA records
per service, the same 20 reviews at every size. Prints one JSON object: per size the wall and
CPU seconds and records/s, and per step between consecutive sizes the data ratio, the time ratio
and their quotient (`linearity`: 1.0 is linear, the goal is at most 1.1), and the same for this
process's CPU alone (`cpu_linearity`: the sandbox serves from its own process, and at 3,000
services its serving, not our work, dominates the wall time).

    .venv/bin/python bench/scale.py [--sizes 100,1000,3000] [--records-per-service 100]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
UNLIMITED = "servicenow=1000000/1s,jira=1000000/1s"


def cold_sync(services: int, records: int, reviews: int) -> dict[str, Any]:
    """One cold sync in a child process; its JSON (or the end of its stderr on failure)."""
    command = [
        sys.executable, str(HERE / "cold_sync.py"),
        "--services", str(services), "--sla-records", str(records),
        "--latency-ms", "0", "--rate-limit", UNLIMITED, "--reviews", str(reviews),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"services": services, "exit": done.returncode, "stderr_tail": done.stderr[-1500:]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,3000", help="services per run")
    parser.add_argument("--records-per-service", type=int, default=100)
    parser.add_argument("--reviews", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    runs = []
    for services in sizes:
        print(f"scale: {services} services ...", file=sys.stderr, flush=True)
        result = cold_sync(services, services * args.records_per_service, args.reviews)
        runs.append(
            {
                "services": services,
                "sla_records": services * args.records_per_service,
                "wall_s": result.get("wall_s"),
                "cpu_s": result.get("cpu_s"),
                "sla_records_per_s": result.get("sla_records_per_s"),
                "calls": result.get("calls"),
                **({"error": result["stderr_tail"]} if "stderr_tail" in result else {}),
            }
        )
    steps = []
    for base, run in itertools.pairwise(runs):  # consecutive sizes
        if not base.get("wall_s") or not run.get("wall_s"):
            continue
        data_ratio = run["sla_records"] / base["sla_records"]
        time_ratio = run["wall_s"] / base["wall_s"]
        cpu_ratio = run["cpu_s"] / base["cpu_s"] if base.get("cpu_s") else None
        steps.append(
            {
                "from": base["services"],
                "to": run["services"],
                "data_ratio": round(data_ratio, 2),
                "time_ratio": round(time_ratio, 2),
                "linearity": round(time_ratio / data_ratio, 2),
                # our process alone (the sandbox serves from its own process)
                "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 2),
                "cpu_linearity": None if cpu_ratio is None else round(cpu_ratio / data_ratio, 2),
            }
        )
    print(json.dumps({"benchmark": "scale", "runs": runs, "steps": steps}, indent=2))
    if any("error" in run for run in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
