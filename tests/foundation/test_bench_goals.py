"""The goals table of `bench/goals.py`: ratios, met / not met, and "not measured"."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

_PATH = Path(__file__).resolve().parents[2] / "bench" / "goals.py"
_SPEC = importlib.util.spec_from_file_location("bench_goals", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
goals = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_goals"] = goals  # dataclasses look their module up while building
_SPEC.loader.exec_module(goals)
evaluate, table = goals.evaluate, goals.table


def _results(**benchmarks: dict[str, Any]) -> dict[str, Any]:
    return {"benchmarks": {name: {"exit": 0, "result": r} for name, r in benchmarks.items()}}


def _row(rows: list[dict[str, Any]], measure_start: str) -> dict[str, Any]:
    return next(r for r in rows if r["measure"].startswith(measure_start))


def test_upper_and_lower_bounds_give_ratios_where_at_most_one_is_met() -> None:
    rows = evaluate(
        _results(
            mapping_throughput={"records_per_second": 100_000, "ratio": 2.0},
            memory={"peak_rss_ratio": 1.17},
        )
    )
    rate = _row(rows, "mapping, shipped")
    assert (rate["measured"], rate["ratio"], rate["met"]) == (100_000, 0.5, True)
    naive = _row(rows, "mapping against naive")
    assert (naive["ratio"], naive["met"]) == (1.5, False)
    memory = _row(rows, "peak RSS")
    assert (memory["ratio"], memory["met"]) == (0.9, True)


def test_a_benchmark_that_failed_or_did_not_run_is_not_measured_never_met() -> None:
    results = _results(memory={"peak_rss_ratio": 1.0})
    results["benchmarks"]["memory"]["exit"] = 1
    rows = evaluate(results)
    assert all(not r["met"] and r["measured"] is None for r in rows)
    text = table(rows)
    assert "not measured" in text
    assert "| yes |" not in text


def test_zero_bound_counts_zero_as_met_and_anything_else_as_not() -> None:
    idle = {"source_calls": 7, "writes": {"jira": 0, "servicenow": 0}}
    assert _row(evaluate(_results(idle_cycle=idle)), "idle cycle, 50 services: writes")["met"]
    idle["writes"] = {"jira": 2, "servicenow": 0}
    assert not _row(evaluate(_results(idle_cycle=idle)), "idle cycle, 50 services: writes")["met"]


def test_scale_is_judged_on_its_worst_step_between_consecutive_sizes() -> None:
    """Fixed costs flatter a step from a small estate: 100 -> 1,000 looks better than linear
    while 1,000 -> 3,000 doubles; the goal reads the worse step, for wall time and CPU apart."""
    runs = [
        {"services": 100, "sla_records": 10_000, "wall_s": 8.0, "cpu_s": 8.0},
        {"services": 1000, "sla_records": 100_000, "wall_s": 60.0, "cpu_s": 25.0},
        {"services": 3000, "sla_records": 300_000, "wall_s": 360.0, "cpu_s": 72.0},
    ]
    rows = evaluate(_results(scale={"runs": runs}))
    wall = _row(rows, "scale 100")
    assert (wall["measured"], wall["met"]) == (2.0, False)
    cpu = _row(rows, "same, CPU")
    assert (cpu["measured"], cpu["met"]) == (0.96, True)
