"""The performance goals (issues 18 and 19) as goal / measured / ratio, from `bench/results.json`.

Each goal reads one figure out of one benchmark's JSON and compares it with its bound. `ratio`
is measured ÷ bound for an upper bound and bound ÷ measured for a lower bound, so a ratio at or
below 1.0 always means the goal is met. A benchmark that did not run (or failed) reads as "not
measured", never as met.

    .venv/bin/python bench/goals.py [bench/results.json]     # prints the Markdown table
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

Results = Mapping[str, Any]


@dataclass(frozen=True)
class Goal:
    """One line of the table: a figure of one benchmark against its bound."""

    measure: str
    benchmark: str
    goal: str
    bound: float
    upper: bool  # True: the figure must stay at or below the bound
    figure: Callable[[Results], float | None]
    unit: str = ""

    def evaluate(self, benchmarks: Mapping[str, Any]) -> dict[str, Any]:
        entry = benchmarks.get(self.benchmark) or {}
        result = entry.get("result") if entry.get("exit", 1) == 0 else None
        try:
            measured = self.figure(result) if result else None
        except (KeyError, TypeError, IndexError, ZeroDivisionError, ValueError):
            measured = None
        ratio = None
        if measured is not None:
            if self.upper:
                ratio = measured / self.bound if self.bound else (0.0 if measured == 0 else None)
            else:
                ratio = self.bound / measured if measured else None
        return {
            "measure": self.measure,
            "benchmark": self.benchmark,
            "goal": self.goal,
            "measured": None if measured is None else round(measured, 2),
            "unit": self.unit,
            "ratio": None if ratio is None else round(ratio, 2),
            "met": ratio is not None and ratio <= 1.0 + 1e-9,
        }


def _jira_run(result: Results, flavor: str = "cloud") -> Results:
    """The largest run of the Jira write benchmark for one flavour."""
    runs = [r for r in result["runs"] if r["flavor"] == flavor]
    return max(runs, key=lambda r: r["reviews"])


def _scale(result: Results, figure: str) -> float | None:
    """The worst step between consecutive sizes: the figure's ratio over the data ratio (1.0 is
    linear; fixed costs make a step from a small estate look better than linear)."""
    runs = [r for r in result.get("runs") or [] if r.get(figure)]
    steps = [
        (b[figure] / a[figure]) / (b["sla_records"] / a["sla_records"])
        for a, b in itertools.pairwise(runs)
    ]
    return max(steps) if steps else None


def _scale_linearity(result: Results) -> float | None:
    return _scale(result, "wall_s")


def _scale_cpu_linearity(result: Results) -> float | None:
    return _scale(result, "cpu_s")


def _user_calls(result: Results) -> float:
    routes = _jira_run(result)["by_route"]
    return float(sum(v for k, v in routes.items() if "/user" in k))


def _linear(measure: str, benchmark: str) -> tuple[Goal, Goal]:
    """A scale run's two goals: wall time and our process's CPU linear within 1.1x."""
    return (
        Goal(f"{measure}, wall", benchmark, "time ratio ≤ 1.1 x data ratio", 1.1, True,
             _scale_linearity, "x linear"),
        Goal("same, CPU of slm-sync's process alone", benchmark, "CPU ratio ≤ 1.1 x data ratio",
             1.1, True, _scale_cpu_linearity, "x linear"),
    )  # fmt: skip


GOALS: tuple[Goal, ...] = (
    Goal(
        "cold sync, 1,000 services / 100,000 SLA records, 50 ms, ServiceNow 20/s, Jira 10/s",
        "cold_sync",
        "wall ≤ 1.2 x rate-limit floor",
        1.2,
        True,
        lambda r: r["wall_s"] / r["calls_alone_at_rate_limit_s"],
        "x floor",
    ),
    Goal(
        "same at 0 ms latency, no rate limit",
        "cold_sync_cpu",
        "≥ 20,000 SLA records/s end to end",
        20_000,
        False,
        lambda r: r["sla_records_per_s"],
        "records/s",
    ),
    Goal(
        "idle cycle, nothing changed, 50 services: source calls",
        "idle_cycle",
        "≤ 7 (one per stream)",
        7,
        True,
        lambda r: r["source_calls"],
        "calls",
    ),
    Goal(
        "idle cycle, 50 services: writes",
        "idle_cycle",
        "0 writes",
        0,
        True,
        lambda r: sum(sum(w.values()) if isinstance(w, dict) else w for w in r["writes"].values()),
        "writes",
    ),
    Goal(
        "idle cycle, 1,000 services, 300 under review: source calls",
        "idle_cycle_estate",
        "≤ 7",
        7,
        True,
        lambda r: r["source_calls"],
        "calls",
    ),
    Goal(
        "idle cycle, 1,000 services, 300 under review: target reads",
        "idle_cycle_estate",
        "one target state read (1 Jira search)",
        1,
        True,
        lambda r: r["target_calls"],
        "calls",
    ),
    Goal(
        "idle cycle, 1,000 services, 300 under review: CPU",
        "idle_cycle_estate",
        "≤ 2 s CPU",
        2.0,
        True,
        lambda r: r["idle_cpu_s"],
        "s",
    ),
    *_linear("scale 100 → 1,000 → 3,000 services (100 records each)", "scale"),
    *_linear("scale 1,000 → 10,000 services / 1,000,000 SLA records", "scale_10000"),
    Goal(
        "peak RSS, 1,000,000 vs 100,000 SLA records",
        "memory",
        "≤ 1.3 x",
        1.3,
        True,
        lambda r: r["peak_rss_ratio"],
        "x",
    ),
    Goal(
        "mapping, shipped ServiceNow mapping, one core",
        "mapping_throughput",
        "≥ 50,000 records/s",
        50_000,
        False,
        lambda r: r["records_per_second"],
        "records/s",
    ),
    Goal(
        "mapping against naive per-record jmespath",
        "mapping_throughput",
        "≥ 3 x naive",
        3.0,
        False,
        lambda r: r["ratio"],
        "x",
    ),
    Goal(
        "1,000 reviews x 5 sub-tasks, Jira Cloud create calls",
        "write_economy",
        "bulk creates at the bound",
        1.0,
        True,
        lambda r: _jira_run(r)["bulk_create_calls"] / _jira_run(r)["lower_bound_calls"],
        "x bound",
    ),
    Goal(
        "cold sync, 1,000 services, 20 reviews: Jira user lookups",
        "cold_sync",
        "≤ people of the 20 reviews (≤ 127)",
        127,
        True,
        lambda r: float(sum(v for k, v in r["routes"]["jira"].items() if "/user" in k)),
        "calls",
    ),
    Goal(
        "webhook breach → ticket, 1,000 services / 100,000 records, shipped settings",
        "webhook_latency",
        "p95 < 2 s",
        2.0,
        True,
        lambda r: r["sizes"]["1000"]["p95_seconds"],
        "s",
    ),
    Goal(
        "webhook breach → ticket, 6 services, shipped settings",
        "webhook_latency",
        "p95 < 2 s",
        2.0,
        True,
        lambda r: r["sizes"]["6"]["p95_seconds"],
        "s",
    ),
)


def evaluate(results: Results) -> list[dict[str, Any]]:
    """Every goal against a `results.json` object."""
    benchmarks = results.get("benchmarks", {})
    return [goal.evaluate(benchmarks) for goal in GOALS]


def table(rows: list[dict[str, Any]]) -> str:
    """The goals as a Markdown table (the README's "Goals" table)."""
    lines = ["| measure | goal | measured | ratio | met |", "|---|---|---|---|---|"]
    for row in rows:
        value, unit = row["measured"], row["unit"]
        measured = "not measured" if value is None else f"{value:,} {unit}"
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        met = "-" if value is None else ("yes" if row["met"] else "no")
        lines.append(f"| {row['measure']} | {row['goal']} | {measured} | {ratio} | {met} |")
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    print(table(evaluate(json.loads(path.read_text(encoding="utf-8")))))


if __name__ == "__main__":
    main()
