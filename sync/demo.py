"""`slm-sync demo`: the whole product on a local sandbox, in under a minute.

Starts the Jira (Cloud) and ServiceNow stand-ins on 127.0.0.1 with a seeded estate, asks the
review engine which services it would propose, takes the top ones as the LT's selection, runs a
full sync (ServiceNow, or with `--source jira` the JSM project, as the source; Jira as the
target) and a second sync that must change nothing, and writes the review packs (Markdown, HTML,
charts) to the output directory.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.tree import Tree

from config import Settings
from review import Person, TicketSpec, render_html, render_markdown, review_ticket_key
from sandbox import Sandbox
from sync.build import chart_name
from sync.engine import Engine, RunResult
from sync.state import open_store

DEMO_SELECTION_SIZE = 3


@dataclass
class DemoResult:
    """Both passes and where the packs went."""

    first: RunResult
    second: RunResult
    output_dir: Path
    files: list[Path]
    source: str = "servicenow"

    def as_json(self) -> dict[str, Any]:
        """`demo --json`: both passes' summaries with integer counts."""
        return {
            "first": self.first.as_json(),
            "second": self.second.as_json(),
            "source": self.source,
            "output_dir": str(self.output_dir),
            "files": [str(f) for f in self.files],
        }


def demo_settings(
    sandbox: Sandbox, data_dir: Path, *, log_level: str = "WARNING", source: str = "servicenow"
) -> Settings:
    """Settings pointing at the sandbox, with role holders taken from its estate.

    `source` "jira" reads the review data from the sandbox's JSM project (ITSD) instead of
    ServiceNow; the review tickets still go to the Jira project SLM.
    """
    people = [p for p in sandbox.estate.people if p.in_jira and not p.jira_email_hidden]
    today = datetime.now(UTC).date()

    def holder(index: int) -> dict[str, str]:
        person = people[index % len(people)]
        return {"email": person.email, "name": person.name}

    return Settings.model_validate(
        {
            "servicenow": {
                "url": sandbox.servicenow_url,
                "username": "slm-demo",
                "password": "demo-password",
                "requests_per_second": 200,
            },
            "jira": {
                "url": sandbox.jira_url,
                "email": "slm-demo@example.com",
                "api_token": "demo-api-token",
                "project": "SLM",
                "accountable_field": None,
                "fallback_assignee": holder(0)["email"],
                "index_lag_seconds": 0.5,
                "requests_per_second": 200,
                "jsm_project": "ITSD",
            },
            "sync": {"source": source, "target": "jira", "data_dir": str(data_dir)},
            "review": {
                # The cycle opens today, so the trailing 12 months hold the sandbox's history.
                "cycle": {"frequency": "yearly", "start": today.strftime("%m-%d")},
                "roles": {
                    "slm_process_owner": holder(0),
                    "service_catalog_owner": holder(1),
                    "lt_members": [holder(2), holder(3)],
                    "default_lt_sponsor": holder(2),
                },
            },
            "logging": {"level": log_level},
        }
    )


def run_demo(
    output_dir: Path, *, seed: int = 7, log_level: str = "WARNING", source: str = "servicenow"
) -> DemoResult:
    """Sandbox up, plan, two syncs, packs written; the sandbox stops afterwards."""
    with Sandbox(seed=seed, jira_flavor="cloud") as sandbox, tempfile.TemporaryDirectory() as tmp:
        settings = demo_settings(sandbox, Path(tmp), log_level=log_level, source=source)
        store = open_store(settings.sync.resolved_state_url())
        try:
            proposal = Engine.from_settings(settings, store).run_once(dry_run=True)
            chosen = [c.service_key for c in proposal.build.candidates[:DEMO_SELECTION_SIZE]]
            settings.review.selection = chosen
            engine = Engine.from_settings(settings, store)
            first = engine.run_once()
            second = engine.run_once()
            files = write_packs(second, output_dir)
        finally:
            store.close()
    return DemoResult(first, second, output_dir, files, source)


def write_packs(result: RunResult, output_dir: Path) -> list[Path]:
    """Each selected service's pack as Markdown and HTML, with its chart beside them."""
    output_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    names = {s.key: s.name for s in result.build.services}
    for key, pack in result.build.packs.items():
        title = f"Service review {result.build.cycle.id}: {names.get(key, key)}"
        chart = chart_name(key)
        (output_dir / chart).write_bytes(result.build.charts[key])
        stem = review_ticket_key(result.build.cycle.id, key).replace(":", "_")
        markdown = output_dir / f"{stem}.md"
        markdown.write_text(render_markdown(pack.body, title=title, chart=chart), encoding="utf-8")
        html = output_dir / f"{stem}.html"
        html.write_text(render_html(pack.body, title=title, chart=chart), encoding="utf-8")
        files += [markdown, html, output_dir / chart]
    return files


def ticket_tree(result: RunResult) -> Tree:
    """The cycle and review tickets with their sub-tasks and who got which activity."""
    tickets = {o.key: o.ticket for o in result.summary.outcomes}
    children: dict[str | None, list[TicketSpec]] = {}
    for spec in result.tickets:
        children.setdefault(spec.parent_key, []).append(spec)
    tree = Tree("tickets in Jira")
    for root in children.get(None, []):
        _branch(tree, root, children, tickets)
    return tree


def _branch(
    node: Tree,
    spec: TicketSpec,
    children: dict[str | None, list[TicketSpec]],
    tickets: dict[str, str | None],
) -> None:
    who = f"R: {_name(spec.assignee)}, A: {_name(spec.accountable)}"
    if spec.consulted:
        who += ", C: " + ", ".join(_name(p) for p in spec.consulted)
    branch = node.add(f"[bold]{tickets.get(spec.key) or '-'}[/] {spec.title}  [dim]({who})[/]")
    for child in children.get(spec.key, []):
        _branch(branch, child, children, tickets)


def _name(person: Person | None) -> str:
    return person.name if person is not None else "unassigned"
