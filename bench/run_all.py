"""Run every benchmark, each in its own process, and write `bench/results.json`.

    .venv/bin/python bench/run_all.py            # the full figures (about 40 minutes)
    .venv/bin/python bench/run_all.py --quick    # smaller sizes, a few minutes (CI-like)
    make bench                                   # the same as the first line

Each benchmark prints one JSON object; this collects them under their names with the command
line, exit code and seconds of each, plus the machine they ran on, and prints the whole file.
A benchmark that fails is recorded with its exit code and the end of its stderr; the others run.
`--only a,b` runs those and keeps the other figures already in the file (same `--quick`).
The goals of issues 18 and 19 (`bench/goals.py`) are evaluated into `goals` (goal / measured /
ratio / met) and printed as a Markdown table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from bench.goals import evaluate, table  # noqa: E402

UNLIMITED = "servicenow=1000000/1s,jira=1000000/1s"
QUICK_COLD = ["--services", "100", "--sla-records", "10000", "--reviews", "5"]

# name -> (script, full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "write_economy": (
        "jira_write.py",
        ["--sizes", "10,100,1000", "--subtasks", "5"],
        ["--sizes", "10,100", "--subtasks", "5"],
    ),
    "cold_sync": (
        "cold_sync.py",
        [],
        QUICK_COLD,
    ),
    # the same without latency or rate limits: our own work, records/s end to end
    "cold_sync_cpu": (
        "cold_sync.py",
        ["--latency-ms", "0", "--rate-limit", UNLIMITED, "--read-alone"],
        [*QUICK_COLD, "--latency-ms", "0", "--rate-limit", UNLIMITED],
    ),
    "idle_cycle": ("idle_cycle.py", [], ["--services", "20", "--sla-records", "2000"]),
    # an estate with many reviews open: what an idle cycle costs at size (300 of 1,000 under
    # review: the first, cold cycle renders a chart per review, minutes for all 1,000)
    "idle_cycle_estate": (
        "idle_cycle.py",
        ["--services", "1000", "--sla-records", "100000", "--reviews", "300"],
        ["--services", "100", "--sla-records", "10000", "--reviews", "100"],
    ),
    "scale": ("scale.py", [], ["--sizes", "50,200"]),
    # the estate at 10,000 services / 1,000,000 SLA records (a cold sync of about 4 minutes,
    # after a sandbox start of 2): is the step from 1,000 linear?
    "scale_10000": ("scale.py", ["--sizes", "1000,10000"], ["--sizes", "100,1000"]),
    "memory": ("memory.py", [], ["--quick"]),
    "mapping_throughput": ("mapping.py", [], ["--records", "20000", "--repeat", "1"]),
    "servicenow_read": ("servicenow_read.py", [], ["--records", "10000"]),
    "sandbox_throughput": ("sandbox.py", [], ["--seconds", "2"]),
    "webhook_latency": ("webhook_latency.py", [], ["--sizes", "6", "--rounds", "3"]),
    "chart": ("chart.py", ["--charts", "20"], ["--charts", "5"]),
}


def run(name: str, quick: bool) -> dict[str, Any]:
    """One benchmark in a child process: its JSON, or its exit code and stderr's end."""
    script, full, small = BENCHMARKS[name]
    command = [sys.executable, str(HERE / script), *(small if quick else full)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True, check=False)
    entry: dict[str, Any] = {
        "command": " ".join(["python", f"bench/{script}", *command[2:]]),
        "exit": done.returncode,
        "seconds": round(time.perf_counter() - started, 1),
    }
    try:
        entry["result"] = json.loads(done.stdout)
    except json.JSONDecodeError:
        entry["result"] = None
        entry["stderr_tail"] = done.stderr[-2000:]
    return entry


def speed_probe_ms(repeat: int = 5) -> float:
    """The machine's speed just before a benchmark: best of `repeat` runs of one fixed piece of
    pure-Python work (dicts, strings, JSON), in ms. This machine's speed varies by up to 2x
    between sessions (and by 10-20 % within one), so a figure is compared with another only
    together with their probes: a CPU-bound figure measured at twice the probe is no slower."""
    rows = [{"sys_id": f"{n:032x}", "stage": "completed", "n": str(n)} for n in range(2000)]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(5):
            text = json.dumps(rows, sort_keys=True)
            decoded = json.loads(text)
            sum(len(r["sys_id"]) + int(r["n"]) for r in decoded)
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes (minutes, not half an hour)"
    )
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(
            f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(BENCHMARKS)}"
        )
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "benchmarks": {},
    }
    if args.only and args.output.exists():  # a partial run updates the recorded figures
        earlier = json.loads(args.output.read_text(encoding="utf-8"))
        if earlier.get("quick") == args.quick:
            results["benchmarks"] = earlier.get("benchmarks", {})
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        probe = speed_probe_ms()
        results["benchmarks"][name] = run(name, args.quick)
        results["benchmarks"][name]["speed_probe_ms"] = probe
        results["benchmarks"][name]["ran_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["goals"] = evaluate(results)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    print(table(results["goals"]), file=sys.stderr)
    failed = [n for n in names if results["benchmarks"][n]["exit"] != 0]
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
