"""Benchmark: Jira calls per review ticket when slm-sync creates reviews with their sub-tasks.

For 10, 100 and 1000 reviews (each with 3 activity sub-tasks, under one cycle ticket) against
the in-process sandbox (Cloud and Data Center), counts the create calls the connector made
(`/__sandbox/requests`) and compares them with the lower bound ceil(n/50) per level and with
one call per issue. Prints one JSON object.

    .venv/bin/python bench/jira_write.py [--sizes 10,100,1000] [--subtasks 3]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from config import JiraSettings, Settings  # noqa: E402
from connectors import set_testing  # noqa: E402
from connectors.jira import JiraTarget  # noqa: E402
from review import Person, TicketKind, TicketSpec  # noqa: E402
from review.document import Document, paragraph  # noqa: E402
from sandbox import Sandbox  # noqa: E402

ACTIVITIES = (
    "schedule_review",
    "prepare_artifacts",
    "participate",
    "report",
    "propose_improvements",
)


def plan(n: int, subtasks: int, people: list[Person]) -> list[TicketSpec]:
    """A cycle ticket, n reviews and `subtasks` activity sub-tasks under each review."""
    body = Document(blocks=(paragraph("Review pack."),))
    specs = [TicketSpec(key="slm:2026:cycle", kind=TicketKind.CYCLE, title="Cycle", body=body)]
    for index in range(n):
        owner = people[index % len(people)]
        review = f"slm:2026:svc{index:05d}:review"
        specs.append(
            TicketSpec(
                key=review,
                kind=TicketKind.REVIEW,
                title=f"Review {index}",
                body=body,
                assignee=owner,
                due=date(2026, 3, 1),
            )
        )
        specs += [
            TicketSpec(
                key=f"slm:2026:svc{index:05d}:{activity}",
                parent_key=review,
                kind=TicketKind.ACTIVITY,
                title=f"{activity} {index}",
                body=body,
                assignee=owner,
            )
            for activity in ACTIVITIES[:subtasks]
        ]
    return specs


def measure(flavor: str, n: int, subtasks: int) -> dict[str, Any]:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    with Sandbox(seed=7, services=12, sla_records=200, jira_flavor=flavor, now=now) as site:
        auth: dict[str, Any] = (
            {"email": "bench@example.com", "api_token": SecretStr("t")}
            if flavor == "cloud"
            else {"personal_access_token": SecretStr("t")}
        )
        settings = Settings(
            jira=JiraSettings(url=site.jira_url, requests_per_second=10_000, **auth)
        )
        people = [
            Person(email=p.email, name=p.name)
            for p in site.estate.people
            if p.in_jira and p.active and not p.jira_email_hidden
        ]
        target = JiraTarget.from_settings(settings)
        specs = plan(n, subtasks, people)
        requests.post(f"{site.jira_url}/__sandbox/reset", timeout=5)
        results = target.create(specs, {})
        counts = requests.get(f"{site.jira_url}/__sandbox/requests", timeout=5).json()
    by_route: dict[str, int] = counts["by_route"]
    bulk = sum(v for k, v in by_route.items() if k.endswith("/issue/bulk"))
    issues = len(specs)
    return {
        "flavor": flavor,
        "reviews": n,
        "issues": issues,
        "failed": sum(1 for r in results if r.ref is None),
        "calls_total": counts["total"],
        "bulk_create_calls": bulk,
        "calls_per_review": round(counts["total"] / n, 3),
        "lower_bound_calls": math.ceil((n + 1) / 50) + math.ceil(n * subtasks / 50),
        "one_call_per_issue": issues,
        "by_route": by_route,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--subtasks", type=int, default=3, choices=range(len(ACTIVITIES) + 1))
    args = parser.parse_args()
    set_testing(True)
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40)  # errors only
    )
    sizes = [int(size) for size in args.sizes.split(",")]
    runs = [measure(f, n, args.subtasks) for f in ("cloud", "datacenter") for n in sizes]
    print(json.dumps({"subtasks_per_review": args.subtasks, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
