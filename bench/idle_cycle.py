"""Benchmark: the calls an incremental cycle makes when nothing changed in either system.

Starts the sandbox in its own process, runs a first (cold) sync in this process, a second that
reads back the tickets the first wrote (its target calls are reported as `readback_...`), then
a third with every request counted: per source table, per source stream and per target route,
and the writes. The source's first pages travel in one REST Batch API call
(`servicenow.batch_reads`): `source_calls` counts HTTP calls (a batch is one),
`source_reads_by_table` the table reads made inside batches (`source_batched_by_table`) or alone
(`source_calls_by_table`). The aim is one call in all, reading each table a stream reads once
(an empty page ends each incremental read; the component stream reads relations, deleted
relations and CIs; people are refreshed every `servicenow.people_refresh_seconds`, not every
cycle), one target read of the tickets that changed, and zero writes. Prints one JSON object,
and "idle cycle: S source calls / T target calls" on stderr.

`--restart` adds a fourth cycle run by a new engine on a new store object over the same database
(a restarted daemon, the next `slm-sync sync --once`): its source and target calls and reviews
rebuilt (`restart`), which the state store's kept CMDB mirror, ticket states and packs keep at
the idle figures.

    .venv/bin/python bench/idle_cycle.py [--services 50] [--sla-records 10000] [--reviews 5]
                                         [--restart]
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

from bench._harness import TableSpy, quiet, sandbox_settings, service_keys, start_sandbox, writes  # noqa: E402
from sync.engine import Engine  # noqa: E402
from sync.state import open_store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--sla-records", type=int, default=10_000)
    parser.add_argument("--reviews", type=int, default=5)
    parser.add_argument("--restart", action="store_true", help="also a restarted engine's cycle")
    args = parser.parse_args()
    quiet()
    site = start_sandbox("--services", str(args.services), "--sla-records", str(args.sla_records),
                         "--index-lag-ms", "0")  # fmt: skip
    spy = TableSpy()
    restart: dict[str, Any] | None = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = sandbox_settings(site, Path(tmp), selection=service_keys(site, args.reviews))
            settings.sync.ticket_read_margin_seconds = 0  # the sandbox's index lag is off here
            store = open_store(settings.sync.resolved_state_url())
            engine = Engine.from_settings(settings, store)
            first = engine.run_once().as_json()
            # The next cycle reads back the tickets the first one wrote (each ticket read is
            # incremental: what changed since the last read, in whole minutes and a margin).
            # It runs once the first cycle's writes are outside the window that follows it.
            time.sleep(READ_BACK_PAUSE)
            spy.install()
            readback = engine.run_once()
            readback_reads = {
                k.removeprefix("jira "): n for k, n in spy.by_target.items() if k.startswith("jira")
            }
            spy.by_target.clear()
            spy.batched.clear()
            site.reset_counts()
            cpu, wall = time.process_time(), time.perf_counter()
            idle = engine.run_once()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            second = idle.as_json()
            second["idle_cpu_s"], second["idle_wall_s"] = round(cpu, 2), round(wall, 2)
            second["reviews_rebuilt"] = len(idle.build.rebuilt)
            second["readback_target_calls_by_route"] = readback_reads
            second["readback_unchanged"] = readback.summary.as_counts()["unchanged"]
            store.close()
            counts, idle_calls = site.counts(), dict(spy.by_target)
            idle_batched = dict(spy.batched)
            restart = _restarted(settings, spy) if args.restart else None
    finally:
        site.stop()
    report = _report(args, first, second, counts, idle_calls, idle_batched)
    if restart is not None:
        report["restart"] = restart
    print(json.dumps(report))
    print(
        f"idle cycle: {report['source_calls']} source calls / {report['target_calls']} target "
        f"calls at {args.services} services",
        file=sys.stderr,
    )


def _restarted(settings: Any, spy: TableSpy) -> dict[str, Any]:
    """One cycle of a new engine on a new store object over the same database."""
    spy.by_target.clear()
    spy.batched.clear()
    store = open_store(settings.sync.resolved_state_url())
    result = Engine.from_settings(settings, store).run_once()
    store.close()
    calls = dict(spy.by_target)
    source = {k.split()[-1]: n for k, n in calls.items() if k.startswith("servicenow GET")}
    target = {k.removeprefix("jira "): n for k, n in calls.items() if k.startswith("jira")}
    return {
        "source_calls_by_table": source,
        "source_batched_by_table": {k.split()[-1]: n for k, n in spy.batched.items()},
        "source_calls": sum(n for k, n in calls.items() if k.startswith("servicenow ")),
        "target_calls_by_route": target,
        "target_calls": sum(target.values()),
        "reviews_rebuilt": len(result.build.rebuilt),
        "tickets": {k: result.as_json()[k] for k in ("created", "updated", "unchanged")},
    }


# Seconds between the cold cycle and the read-back cycle: the read after that (the idle one)
# reaches back a whole minute plus sync.ticket_read_margin_seconds (set to 0 here).
READ_BACK_PAUSE = 62

# The tables each source stream reads (the stock ServiceNow configuration).
STREAM_TABLES = {
    "service": ("cmdb_ci_service",),
    "component": ("cmdb_rel_ci", "sys_audit_delete", "cmdb_ci", "cmdb_rel_type"),
    "person": ("sys_user",),
    "agreement": ("contract_sla", "service_commitment", "service_offering_commitment",
                  "service_offering"),
    "sla_record": ("task_sla",),
    "csat_response": ("asmt_metric_result", "incident", "task"),
    "material": ("kb_knowledge", "problem"),
}  # fmt: skip


def _report(
    args: argparse.Namespace, first: dict[str, Any], second: dict[str, Any],
    counts: dict[str, dict[str, Any]], by_target: dict[str, int], batched: dict[str, int],
) -> dict[str, Any]:  # fmt: skip
    streams = {k.split()[-1]: n for k, n in by_target.items() if k.startswith("servicenow GET")}
    inside = {k.split()[-1]: n for k, n in batched.items()}
    reads = {t: streams.get(t, 0) + inside.get(t, 0) for t in dict.fromkeys([*inside, *streams])}
    http = sum(n for k, n in by_target.items() if k.startswith("servicenow "))
    target_reads = {
        k.removeprefix("jira "): n for k, n in by_target.items() if k.startswith("jira")
    }
    return {
        "benchmark": "idle_cycle",
        "services": args.services,
        "sla_records": args.sla_records,
        "reviews_selected": args.reviews,
        "first_cycle_created": first["created"],
        "source_streams": len(first["records_read"]),
        "source_calls": http,
        "source_batch_calls": by_target.get("servicenow POST batch", 0),
        "source_calls_by_table": streams,
        "source_batched_by_table": inside,
        "source_reads_by_table": reads,
        "source_reads_by_stream": {
            stream: sum(reads.get(t, 0) for t in tables) for stream, tables in STREAM_TABLES.items()
        },
        "target_calls_by_route": target_reads,
        "target_calls": sum(target_reads.values()),
        "writes": {s: writes(c) for s, c in counts.items()},
        "idle_cpu_s": second["idle_cpu_s"],  # this process (the sandbox runs in its own)
        "idle_wall_s": second["idle_wall_s"],
        "reviews_rebuilt": second["reviews_rebuilt"],
        "readback_target_calls_by_route": second["readback_target_calls_by_route"],
        "tickets": {k: second[k] for k in ("created", "updated", "unchanged", "failed")},
        "records_read": second["records_read"],
    }


if __name__ == "__main__":
    main()
