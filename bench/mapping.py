"""Benchmark: task_sla records per second through the shipped ServiceNow mapping, on one core.

Prints one JSON object: the compiled mapping's rate for N records (default 100,000), the rate of
the same mapping when every field is read with `jmespath.search(expression, record)` per record
(the naive way: parse-cache lookup, a new interpreter per call, no direct-key fast path) and the
ratio. Records are shaped like the sandbox's task_sla rows read with dot-walked fields.

    .venv/bin/python bench/mapping.py [--records 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jmespath

# Run as a script, this file's folder comes first on sys.path and its name would hide the
# `mapping` package: look in the project root instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from mapping import load_mappings, map_records  # noqa: E402

STAGES = ("completed", "completed", "completed", "in_progress", "breached", "cancelled")


def task_sla_rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` raw task_sla rows as the Table API returns them (all values strings)."""
    rng = random.Random(seed)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    services = [f"{rng.getrandbits(128):032x}" for _ in range(12)]
    slas = [f"{rng.getrandbits(128):032x}" for _ in range(60)]
    rows = []
    for n in range(count):
        start = base + timedelta(seconds=rng.randint(0, 300 * 86400))
        took = timedelta(seconds=rng.randint(60, 5 * 86400))
        stage = rng.choice(STAGES)
        rows.append(
            {
                "sys_id": f"{rng.getrandbits(128):032x}",
                "stage": stage,
                "sla": rng.choice(slas),
                "task": f"{rng.getrandbits(128):032x}",
                "task.number": f"INC{n + 10001:07d}",
                "task.business_service": rng.choice(services),
                "task.priority": rng.choice("12345"),
                "start_time": start.strftime("%Y-%m-%d %H:%M:%S"),
                "end_time": ""
                if stage == "in_progress"
                else (start + took).strftime("%Y-%m-%d %H:%M:%S"),
                "has_breached": rng.choice(("true", "false")),
                "duration": (datetime(1970, 1, 1) + took).strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
    return rows


def compiled_rate(rows: list[dict[str, Any]]) -> tuple[float, int]:
    """Records/s through the compiled shipped mapping, and how many became entities."""
    entity = load_mappings("servicenow").entity("sla_record")
    started = time.perf_counter()
    result = map_records(entity, rows)
    elapsed = time.perf_counter() - started
    return len(rows) / elapsed, len(result.entities)


def naive_rate(rows: list[dict[str, Any]]) -> float:
    """Records/s through the same mapping with every field read by `jmespath.search`."""
    entity = load_mappings("servicenow").entity("sla_record")
    naive = replace(
        entity,
        fields=tuple(
            replace(spec, getter=_searcher(spec.source)) if spec.source else spec
            for spec in entity.fields
        ),
        keep=lambda record: jmespath.search("stage != 'cancelled'", record),
    )
    started = time.perf_counter()
    map_records(naive, rows)
    return len(rows) / (time.perf_counter() - started)


def _searcher(source: str) -> Any:
    return lambda record: jmespath.search(source, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rows = task_sla_rows(args.records)
    # The input rows are the connector's, not the mapping's work: keep the garbage collector
    # from re-scanning them on every collection while the mapping runs.
    gc.collect()
    gc.freeze()
    rate, mapped = max(compiled_rate(rows) for _ in range(args.repeat))
    naive = max(naive_rate(rows) for _ in range(args.repeat))
    print(
        json.dumps(
            {
                "benchmark": "mapping.task_sla",
                "records": args.records,
                "mapped": mapped,
                "records_per_second": round(rate),
                "naive_jmespath_search_records_per_second": round(naive),
                "naive_note": "same mapping, every field read by jmespath.search per record",
                "ratio": round(rate / naive, 1),
                "repeat": args.repeat,
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
