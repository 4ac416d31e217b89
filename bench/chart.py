"""Benchmark: time to draw one service's attainment heat map (PNG bytes), on one core.

Every sync draws the chart of each selected service again (unchanged bytes are not uploaded), so
this time is paid per selected service per cycle. Prints one JSON object: the first chart (font
registration included), the median and worst of the following ones, and the PNG size, for a
service with 7 targets over 13 months (partial first and last months, some months empty, some
with few records) and a CJK + emoji name.

    .venv/bin/python bench/chart.py [--charts 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path: look in the project root instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from bench._harness import quiet  # noqa: E402
from review import attainment_chart  # noqa: E402
from review.model import (  # noqa: E402
    Attainment,
    AttainmentStatus,
    MonthlyAttainment,
    ReviewPeriod,
)

PERIOD = ReviewPeriod(
    start=datetime(2025, 1, 15, tzinfo=UTC), end=datetime(2026, 1, 15, tzinfo=UTC)
)
MONTHS = [f"{2025 + (m // 12)}-{m % 12 + 1:02d}" for m in range(13)]
LABELS = ("Availability", "Response P1", "Response P2", "Resolution P1", "Resolution P2",
          "Resolution P3", "Resolution P4")  # fmt: skip


def series(seed: int = 7) -> list[tuple[str, Attainment]]:
    """Seven targets with a realistic mix of full, thin and empty months."""
    rng = random.Random(seed)
    rows = []
    for label in LABELS:
        monthly = []
        for month in MONTHS:
            if rng.random() < 0.25:
                continue
            measured = rng.choice((1, 2, 3, 8, 20, 45))
            breached = sum(rng.random() < 0.08 for _ in range(measured))
            share = (measured - breached) / measured
            monthly.append(
                MonthlyAttainment(
                    month=month, measured=measured, breached=breached, attainment=share
                )
            )
        measured = sum(m.measured for m in monthly)
        breached = sum(m.breached for m in monthly)
        rows.append((label, Attainment(
            agreement_key=label, period=PERIOD, measured=measured, breached=breached,
            attainment=(measured - breached) / measured if measured else None,
            target_percent=95.0, status=AttainmentStatus.MISSED, monthly=tuple(monthly),
        )))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charts", type=int, default=20, help="charts drawn after the first")
    args = parser.parse_args()
    quiet()  # stdout carries the JSON (a missing font's warning goes to stderr)
    data = series()
    title = "決済サービス 💳 Payments: monthly attainment"
    started = time.perf_counter()
    png = attainment_chart(title, data)
    first_s = time.perf_counter() - started
    times = []
    for _ in range(args.charts):
        started = time.perf_counter()
        attainment_chart(title, data)
        times.append(time.perf_counter() - started)
    print(json.dumps({
        "benchmark": "chart",
        "python": platform.python_version(),
        "targets": len(data), "months": len(MONTHS), "charts": args.charts,
        "first_chart_s": round(first_s, 3),
        "median_chart_s": round(statistics.median(times), 3),
        "max_chart_s": round(max(times), 3),
        "png_bytes": len(png),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
