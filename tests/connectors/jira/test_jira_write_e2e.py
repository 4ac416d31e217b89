"""End to end against the sandbox, Cloud and Data Center: review tickets in bulk, idempotently."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config import Settings
from connectors.jira import JiraTarget
from review import TicketSpec
from sandbox import Sandbox

N_REVIEWS = 120


def _run(target: JiraTarget, specs: list[TicketSpec]) -> dict[str, Any]:
    """What the sync layer does: find existing keys, create the rest, update the found."""
    found = target.find([spec.key for spec in specs])
    missing = [spec for spec in specs if spec.key not in found]
    results = target.create(missing, found)
    for spec in specs:
        if spec.key in found:
            target.update(found[spec.key], spec)
    return {"found": found, "results": results}


def test_bulk_creates_reviews_with_subtasks_people_and_labels(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """120 review tickets with 3 sub-tasks each land in Jira through bulk calls: sub-tasks under
    their review, the key and `slm-sync` as labels, assignee, accountable field, due date, and
    consulted / informed people mentioned in the body."""
    specs = review_plan(fresh_site, N_REVIEWS)
    target = JiraTarget.from_settings(jira_settings(fresh_site))
    outcome = _run(target, specs)
    assert all(r.ref is not None for r in outcome["results"]), [
        r.error for r in outcome["results"] if r.error
    ][:3]
    tickets = {t["labels"][0]: t for t in created(fresh_site)}
    assert len(tickets) == len(specs) == 1 + 4 * N_REVIEWS
    review = tickets["slm:2026:svc0007:review"]
    spec = next(s for s in specs if s.key == "slm:2026:svc0007:review")
    assert review["labels"] == ["slm:2026:svc0007:review", "slm-sync", "slm-review"]
    assert review["assignee"]["email"] == spec.assignee.email  # type: ignore[union-attr]
    assert review["accountable"]["email"] == spec.accountable.email  # type: ignore[union-attr]
    assert review["due_date"] == "2026-03-01"
    subtask = tickets["slm:2026:svc0007:participate"]
    assert subtask["parent"] == review["key"] and subtask["type"] == "Sub-task"
    description = str(review["description"])
    consulted = spec.consulted[0]
    if fresh_site.jira_flavor == "cloud":
        account = next(
            p.jira_account_id for p in fresh_site.estate.people if p.email == consulted.email
        )
        assert f"'id': '{account}'" in description  # an ADF mention notifies by accountId
    else:
        user = next(p.jira_name for p in fresh_site.estate.people if p.email == consulted.email)
        assert f"[~{user}]" in description
    bulk = sum(v for k, v in calls(fresh_site).items() if k.endswith("/issue/bulk"))
    assert bulk == 3 + 8  # cycle and 120 reviews in 3 calls of <= 50, then 360 sub-tasks in 8


def test_second_run_changes_nothing(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """A second run (a new process, no memory) finds every ticket by its key label and
    neither creates nor edits anything."""
    specs = review_plan(fresh_site, 20)
    _run(JiraTarget.from_settings(jira_settings(fresh_site)), specs)
    before = len(created(fresh_site))
    requests_reset(fresh_site)
    outcome = _run(JiraTarget.from_settings(jira_settings(fresh_site)), specs)
    assert len(outcome["found"]) == len(specs)
    assert len(created(fresh_site)) == before
    writes = {k: v for k, v in calls(fresh_site).items() if k.split()[0] in {"PUT", "POST"}}
    assert set(writes) <= {f"POST /rest/api/{_v(fresh_site)}/search/jql", "POST /rest/api/2/search"}


def _v(sandbox: Sandbox) -> str:
    return "3" if sandbox.jira_flavor == "cloud" else "2"


def requests_reset(sandbox: Sandbox) -> None:
    import requests

    requests.post(f"{sandbox.jira_url}/__sandbox/reset", timeout=5)
