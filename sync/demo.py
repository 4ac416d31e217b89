"""`slm-sync demo`: the whole product on a local sandbox, in under a minute.

Starts the Jira (Cloud) and ServiceNow stand-ins on 127.0.0.1 with a seeded estate and walks
the cycle's opening through the tickets, as the people would:

1. the first sync opens the cycle: the cycle ticket with the ranked candidates and their
   selection tokens, and the LT's "Select services" sub-task;
2. an LT member adds the tokens of the top candidates as labels to the cycle ticket and closes
   the selection sub-task (through Jira's REST API, as the UI does);
3. the next sync reads the selection back from the ticket and opens a review ticket per
   selected service, with its sub-tasks and pack;
4. a last sync must change nothing.

The source is ServiceNow, or with `--source jira` the JSM project; the target is Jira. Each
review pack is written to a folder named for its service, `<output>/<service slug>/` holding
`review.md`, `review.html` and `chart.png` (the slug is that of the service's selection token:
`email-and-calendar`; `service-<8 hex>` for a name with no ASCII letters, `-<4 hex>` added where
two names slug alike).
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from rich.markup import escape
from rich.tree import Tree

from config import Settings
from review import (
    Person,
    TicketKind,
    TicketSpec,
    render_html,
    render_markdown,
    service_slugs,
)
from review.document import document_text
from sandbox import Sandbox
from sync.engine import Engine, RunResult
from sync.portfolio import PAGE_NAME, portfolio_html
from sync.state import open_store

DEMO_SELECTION_SIZE = 3
TOKEN = re.compile(r"slm-select-[a-z0-9][a-z0-9-]*")
JIRA_DONE_TRANSITION = "31"  # the sandbox's (and a stock Jira Software workflow's) "Done"
PACK_FILES = ("review.md", "review.html", "chart.png")  # in each service's folder


@dataclass(frozen=True)
class DemoStep:
    """One step of the walk: what happened and where the cycle stood afterwards."""

    what: str
    cycle_state: str
    selection: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"what": self.what, "cycle_state": self.cycle_state,
                "selection": list(self.selection), "counts": self.counts}  # fmt: skip


@dataclass
class DemoResult:
    """The opening sync, the sync after the LT's selection, the idle one, and the packs."""

    first: RunResult
    second: RunResult
    output_dir: Path
    files: list[Path]
    source: str = "servicenow"
    opening: RunResult | None = None
    steps: list[DemoStep] = field(default_factory=list)
    tokens: tuple[str, ...] = ()
    folders: dict[str, Path] = field(default_factory=dict)  # service key -> its pack's folder
    names: dict[str, str] = field(default_factory=dict)  # service key -> name, of the packs

    def as_json(self) -> dict[str, Any]:
        """`demo --json`: the steps, and the last two syncs' summaries with integer counts."""
        return {
            "steps": [s.as_json() for s in self.steps],
            "tokens": list(self.tokens),
            "first": self.first.as_json(),
            "second": self.second.as_json(),
            "source": self.source,
            "output_dir": str(self.output_dir),
            "files": [str(f) for f in self.files],
            "packs": [
                {"service": self.names.get(key, key), "key": key, "folder": str(folder)}
                for key, folder in self.folders.items()
            ],
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
    """Sandbox up, the cycle opened, the LT's selection made in Jira, reviews opened, an idle
    sync, packs written; the sandbox stops afterwards."""
    with Sandbox(seed=seed, jira_flavor="cloud") as sandbox, tempfile.TemporaryDirectory() as tmp:
        settings = demo_settings(sandbox, Path(tmp), log_level=log_level, source=source)
        store = open_store(settings.sync.resolved_state_url())
        try:
            engine = Engine.from_settings(settings, store)
            opening = engine.run_once()
            steps = [_step("sync: the cycle opens, the LT is asked to select", opening)]
            tokens = lt_tokens(opening)[:DEMO_SELECTION_SIZE]
            lt = JiraActor(sandbox.jira_url, ("slm-demo@example.com", "demo-api-token"))
            cycle_ticket = _ticket_of(opening, TicketKind.CYCLE)
            lt.add_labels(cycle_ticket, tokens)
            steps.append(DemoStep(f"LT adds labels {', '.join(tokens)} to {cycle_ticket}",
                                  opening.phase.state.value))  # fmt: skip
            selection_task = _ticket_of(opening, TicketKind.ACTIVITY)
            lt.transition(selection_task, JIRA_DONE_TRANSITION)
            closed = f"LT closes the selection sub-task {selection_task}"
            steps.append(DemoStep(closed, opening.phase.state.value))
            # A cycle reads the tickets changed since its last read through Jira's search, which
            # shows a change only after its index lag; the daemon's next cycle comes minutes
            # later, the demo's at once: it waits for the lag first.
            time.sleep(settings.jira.index_lag_seconds)
            first = engine.run_once()
            steps.append(_step("sync: the selection is read back, the reviews open", first))
            second = engine.run_once()
            steps.append(_step("sync: nothing changed", second))
            folders = write_packs(second, output_dir)
            page = portfolio_html(second, store, engine.target, settings)
            (output_dir / PAGE_NAME).write_text(page, encoding="utf-8")
        finally:
            store.close()
    files = [folder / name for folder in folders.values() for name in PACK_FILES]
    files.append(output_dir / PAGE_NAME)
    names = {key: pack.service.name for key, pack in second.build.packs.items()}
    return DemoResult(first, second, output_dir, files, source, opening, steps, tuple(tokens),
                      folders, names)  # fmt: skip


def lt_tokens(result: RunResult) -> list[str]:
    """The selection tokens of the cycle ticket's candidates table, best ranked first: what an
    LT member reads in the ticket and types as labels."""
    cycle = next(t for t in result.tickets if t.kind is TicketKind.CYCLE)
    return list(dict.fromkeys(TOKEN.findall(document_text(cycle.body))))


class JiraActor:
    """A person in Jira, through the REST API the UI uses (labels, transitions)."""

    def __init__(self, url: str, auth: tuple[str, str]) -> None:
        self.url, self.auth = url.rstrip("/"), auth

    def add_labels(self, key: str, labels: list[str]) -> None:
        update = {"labels": [{"add": label} for label in labels]}
        self._send("PUT", f"issue/{key}", {"update": update})

    def transition(self, key: str, transition_id: str) -> None:
        self._send("POST", f"issue/{key}/transitions", {"transition": {"id": transition_id}})

    def _send(self, method: str, path: str, body: dict[str, Any]) -> None:
        response = requests.request(
            method, f"{self.url}/rest/api/3/{path}", json=body, auth=self.auth, timeout=30
        )
        response.raise_for_status()


def _ticket_of(result: RunResult, kind: TicketKind) -> str:
    """The Jira key of the first ticket of `kind` the run created or kept."""
    return next(o.ticket for o in result.summary.outcomes if o.kind == kind.value and o.ticket)


def _step(what: str, result: RunResult) -> DemoStep:
    counts = {k: v for k, v in result.summary.as_counts().items() if v}
    return DemoStep(what, result.phase.state.value, result.phase.selection, counts)


def write_packs(result: RunResult, output_dir: Path) -> dict[str, Path]:
    """Each selected service's pack in a folder named for the service (`PACK_FILES`: Markdown,
    HTML and the chart they show); service key -> folder, in the order of the names."""
    packs = result.build.packs
    names = {key: pack.service.name for key, pack in packs.items()}
    slugs = service_slugs(names)
    folders: dict[str, Path] = {}
    markdown, html, chart = PACK_FILES
    for key in sorted(packs, key=lambda k: (names[k].casefold(), k)):
        folder = output_dir / slugs[key]
        folder.mkdir(parents=True, exist_ok=True)
        title = f"Service review {result.build.cycle.id}: {names[key]}"
        body = packs[key].body
        (folder / chart).write_bytes(result.build.charts[key])
        (folder / markdown).write_text(
            render_markdown(body, title=title, chart=chart), encoding="utf-8"
        )
        (folder / html).write_text(render_html(body, title=title, chart=chart), encoding="utf-8")
        folders[key] = folder
    return folders


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
    ticket, title = escape(tickets.get(spec.key) or "-"), escape(spec.title)
    branch = node.add(f"[bold]{ticket}[/] {title}  [dim]({escape(who)})[/]")
    for child in children.get(spec.key, []):
        _branch(branch, child, children, tickets)


def _name(person: Person | None) -> str:
    return person.name if person is not None else "unassigned"
