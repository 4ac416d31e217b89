"""The cycle end to end over HTTP: ServiceNow sandbox as source, Jira Cloud sandbox as target."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from config import Settings, load_raci
from connectors.jira.adf import plain_text
from review import Letter, Role, Scope
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine
from sync.state import StateStore, open_store

AUTH = ("slm-demo", "demo-api-token")


pytestmark = pytest.mark.usefixtures("no_retry_waits")


INDEX_LAG_MS = 200  # the stand-in's search lags this far behind every change


@pytest.fixture
def site() -> Iterator[Sandbox]:
    """A small fresh estate per test (Jira Cloud flavour), index lag as in real Jira."""
    running = Sandbox(seed=11, services=6, sla_records=1500, index_lag_ms=INDEX_LAG_MS).start()
    yield running
    running.stop()


def _settings(site: Sandbox, data_dir: Path, *, selection: list[str] | None = None) -> Settings:
    settings = demo_settings(site, data_dir)
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = 0.3
    if selection is not None:
        settings.review.selection = selection
    return settings


def _engine(settings: Settings, store: StateStore) -> Engine:
    return Engine.from_settings(settings, store)


def _created(site: Sandbox) -> list[dict[str, Any]]:
    tickets = requests.get(f"{site.jira_url}/__sandbox/created", timeout=5).json()["tickets"]
    assert isinstance(tickets, list)
    return tickets


def _writes(site: Sandbox) -> int:
    """POST / PUT / DELETE requests to Jira, except searches (POST /search/jql only reads)."""
    counts = requests.get(f"{site.jira_url}/__sandbox/requests", timeout=5).json()
    return sum(
        n
        for route, n in counts["by_route"].items()
        if route.split()[0] in ("POST", "PUT", "DELETE") and not route.endswith("/search/jql")
    )


def _jira(site: Sandbox, method: str, path: str, body: dict[str, Any]) -> None:
    response = requests.request(
        method, f"{site.jira_url}/rest/api/3/{path}", json=body, auth=AUTH, timeout=5
    )
    assert response.status_code < 300, response.text


def _selection(site: Sandbox, tmp_path: Path, count: int = 2) -> list[str]:
    store = open_store(f"sqlite:///{tmp_path / 'probe' / 'state.db'}")
    result = _engine(_settings(site, tmp_path / "probe"), store).run_once(dry_run=True)
    store.close()
    return [c.service_key for c in result.build.candidates[:count]]


def test_first_run_creates_the_planned_tickets_and_second_run_nothing(
    site: Sandbox, tmp_path: Path
) -> None:
    """Run 1: cycle ticket, select sub-task, reviews with their sub-tasks (4 activities,
    Participate once per R person); run 2: no write."""
    selection = _selection(site, tmp_path)
    settings = _settings(site, tmp_path / "data", selection=selection)
    store = open_store(settings.sync.resolved_state_url())
    first = _engine(settings, store).run_once()
    kinds = Counter(o.kind for o in first.summary.outcomes if o.ticket)
    review_subtasks = [t for t in first.tickets if t.service_key and t.kind.value == "activity"]
    assert len(review_subtasks) >= 4 * len(selection)
    assert kinds == {"cycle": 1, "activity": 1 + len(review_subtasks), "review": len(selection)}
    assert first.summary.as_counts()["failed"] == 0
    tickets = _created(site)
    assert len(tickets) == len(first.summary.outcomes)
    writes = _writes(site)
    second = _engine(settings, store).run_once()
    assert second.summary.as_counts() == {
        "created": 0,
        "updated": 0,
        "unchanged": len(first.summary.outcomes),
        "failed": 0,
        "in_doubt": 0,
    }
    assert _writes(site) == writes
    assert store.last_success() is not None, "each run is recorded in the runs table"
    store.close()


def test_sub_tasks_are_assigned_as_the_seed_raci_says(site: Sandbox, tmp_path: Path) -> None:
    """Each review sub-task goes to its R: the process owner, else the service owner (SLM)."""
    selection = _selection(site, tmp_path, count=1)
    settings = _settings(site, tmp_path / "data", selection=selection)
    store = open_store(settings.sync.resolved_state_url())
    result = _engine(settings, store).run_once()
    store.close()
    service = next(s for s in result.build.services if s.key == selection[0])
    process_owner = settings.review.roles.slm_process_owner
    assert process_owner is not None and service.owner is not None
    matrix = load_raci()
    specs = {t.key: t for t in result.tickets}
    for activity in matrix.in_scope(Scope.SERVICE):
        spec = specs[f"slm:{result.build.cycle.id}:{service.key}:{activity.id}"]
        first_r = activity.roles_with(Letter.R)[0]
        expected = process_owner.email if first_r is Role.SLM_PROCESS_OWNER else service.owner.email
        assert spec.assignee is not None and spec.assignee.email == expected, activity.id
    by_key = {t["summary"]: t for t in _created(site)}
    assert any(t["assignee"] for t in by_key.values())


def test_selection_is_read_back_from_labels_on_the_cycle_ticket(
    site: Sandbox, tmp_path: Path
) -> None:
    """The LT labels the cycle ticket and closes the selection sub-task: reviews appear."""
    settings = _settings(site, tmp_path / "data")
    store = open_store(settings.sync.resolved_state_url())
    first = _engine(settings, store).run_once()
    assert first.phase.state.value == "selecting"
    assert {o.kind for o in first.summary.outcomes} == {"cycle", "activity"}
    ledger = store.ledger_rows("jira")
    cycle_id = first.build.cycle.id
    cycle_ticket = ledger[f"slm:{cycle_id}:cycle"].ticket_key
    select_task = ledger[f"slm:{cycle_id}:cycle:select_services"].ticket_key
    chosen = first.build.candidates[0].service_key
    _jira(
        site,
        "PUT",
        f"issue/{cycle_ticket}",
        {"update": {"labels": [{"add": f"slm-select-{chosen}"}]}},
    )
    _jira(site, "POST", f"issue/{select_task}/transitions", {"transition": {"id": "31"}})
    _wait_until_searchable(site, f"slm-select-{chosen}")
    second = _engine(settings, store).run_once()
    store.close()
    assert second.phase.state.value == "reviewing"
    assert second.phase.selection == (chosen,)
    created = [o for o in second.summary.outcomes if o.action.value == "create"]
    subtasks = [t for t in second.tickets if t.service_key == chosen and t.parent_key]
    assert len(subtasks) >= 4  # 4 activities, Participate once per R person
    assert Counter(o.kind for o in created) == {"review": 1, "activity": len(subtasks)}
    labels = next(t for t in _created(site) if t["key"] == cycle_ticket)["labels"]
    assert f"slm-select-{chosen}" in labels


def _wait_until_searchable(site: Sandbox, label: str) -> None:
    """Jira indexes labels with a lag; the LT's label is searchable before the next sync reads."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = requests.post(
            f"{site.jira_url}/rest/api/3/search/jql",
            json={"jql": f'labels = "{label}"', "fields": ["labels"]},
            auth=AUTH,
            timeout=5,
        ).json()
        if found.get("issues"):
            return
        time.sleep(0.05)
    raise AssertionError(f"label {label} never became searchable")


def _breach_one(site: Sandbox, service_key: str, agreement_keys: set[str], *, nth: int = 0) -> None:
    """Turn the `nth` met SLA record of the service into a breach, stamped a few seconds ago."""
    record = [
        r
        for r in site.estate.sla_records
        if r.sla in agreement_keys and not r.has_breached and r.stage == "completed"
    ][nth]
    site.servicenow.clock = datetime.now(UTC) - timedelta(seconds=5)
    site.servicenow.update("task_sla", record.sys_id, has_breached="true", stage="breached")


def test_changed_sla_record_updates_that_pack_with_a_comment(site: Sandbox, tmp_path: Path) -> None:
    """A new breach refreshes the one affected review ticket and comments what changed."""
    selection = _selection(site, tmp_path)
    settings = _settings(site, tmp_path / "data", selection=selection)
    store = open_store(settings.sync.resolved_state_url())
    first = _engine(settings, store).run_once()
    changed = selection[0]
    slas = {a.key for a in first.build.agreements if a.service_key == changed}
    _breach_one(site, changed, slas)
    second = _engine(settings, store).run_once()
    store.close()
    updated = [o for o in second.summary.outcomes if o.action.value == "update"]
    reviews = [o for o in updated if o.kind == "review"]
    assert [o.key for o in reviews] == [f"slm:{first.build.cycle.id}:{changed}:review"]
    ticket = next(t for t in _created(site) if t["key"] == reviews[0].ticket)
    assert any("breach" in str(c) for c in ticket["comments"])
    said = " ".join(str(c) for c in ticket["comments"])
    assert "new breach of " in said, "the comment counts the breach in words"
    assert "→" not in said and "at_risk" not in said and "no_data" not in said


def test_review_marked_done_freezes_its_pack(site: Sandbox, tmp_path: Path) -> None:
    """The first sync after 'Participate in service review' is done gives the pack its last
    version and says so on the ticket; new data no longer changes that pack afterwards."""
    selection = _selection(site, tmp_path, count=1)
    settings = _settings(site, tmp_path / "data", selection=selection)
    store = open_store(settings.sync.resolved_state_url())
    first = _engine(settings, store).run_once()
    cycle_id, service = first.build.cycle.id, selection[0]
    participate = store.ledger_rows("jira")[f"slm:{cycle_id}:{service}:participate_review"]
    _jira(site, "POST", f"issue/{participate.ticket_key}/transitions", {"transition": {"id": "31"}})
    slas = {a.key for a in first.build.agreements if a.service_key == service}
    _breach_one(site, service, slas)
    time.sleep(INDEX_LAG_MS / 1000 + 0.1)  # the transition reaches the search (see below)
    last = _engine(settings, store).run_once()
    review = next(o for o in last.summary.outcomes if o.kind == "review")
    assert review.action.value == "update", "the pack's last version has the meeting's news"
    ticket = next(t for t in _created(site) if t["key"] == review.ticket)
    assert sum("The review pack is frozen" in str(c) for c in ticket["comments"]) == 1
    _breach_one(site, service, slas, nth=1)
    after = _engine(settings, store).run_once()
    store.close()
    review = next(o for o in after.summary.outcomes if o.kind == "review")
    assert review.action.value == "unchanged"


def test_lost_ledger_finds_existing_tickets_and_creates_nothing(
    site: Sandbox, tmp_path: Path
) -> None:
    """The state file is deleted: the next run finds every ticket by its key label."""
    selection = _selection(site, tmp_path)
    settings = _settings(site, tmp_path / "data", selection=selection)
    store = open_store(settings.sync.resolved_state_url())
    first = _engine(settings, store).run_once()
    store.close()
    for path in (tmp_path / "data").glob("state.db*"):
        path.unlink()
    store = open_store(settings.sync.resolved_state_url())
    again = _engine(settings, store).run_once()
    store.close()
    assert again.summary.as_counts()["created"] == 0
    assert len(_created(site)) == len(first.summary.outcomes)


def test_plan_writes_nothing_to_the_target(site: Sandbox, tmp_path: Path) -> None:
    """`plan` (dry run) lists the tickets it would create and sends no POST or PUT to Jira."""
    settings = _settings(site, tmp_path / "data", selection=_selection(site, tmp_path))
    store = open_store(settings.sync.resolved_state_url())
    result = _engine(settings, store).run_once(dry_run=True)
    store.close()
    assert result.summary.as_counts()["created"] > 0
    assert _writes(site) == 0
    assert _created(site) == []


def _create_issue(site: Sandbox, summary: str) -> str:
    response = requests.post(
        f"{site.jira_url}/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "SLM"},
                "issuetype": {"name": "Task"},
                "summary": summary,
            }
        },
        auth=AUTH,
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def test_open_improvements_linked_to_last_review_carry_into_the_next_cycle(
    site: Sandbox, tmp_path: Path
) -> None:
    """A review last cycle got two improvement tickets linked (one done): the new cycle's pack
    lists the previous review and the open improvement, not the finished one."""
    selection = _selection(site, tmp_path, count=1)
    service = selection[0]
    settings = _settings(site, tmp_path / "data", selection=selection)
    store = open_store(settings.sync.resolved_state_url())
    last_year = _engine(settings, store)
    last_year.clock = lambda: datetime.now(UTC) - timedelta(days=366)
    earlier = last_year.run_once()
    old_review = store.ledger_rows("jira")[f"slm:{earlier.build.cycle.id}:{service}:review"]
    open_action = _create_issue(site, "Add a second mail relay")
    done_action = _create_issue(site, "Document the failover")
    _jira(site, "POST", f"issue/{done_action}/transitions", {"transition": {"id": "31"}})
    for action in (open_action, done_action):
        link = {
            "type": {"name": "Relates"},
            "inwardIssue": {"key": action},
            "outwardIssue": {"key": old_review.ticket_key},
        }
        _jira(site, "POST", "issueLink", link)
    now = _engine(settings, store).run_once()
    store.close()
    assert now.build.cycle.id != earlier.build.cycle.id
    materials = now.build.packs[service].materials
    kinds = {(m.kind.value, m.open) for m in materials if m.key.startswith(("review:", "impr"))}
    assert kinds == {("previous_review", False), ("improvement", True)}
    carried = next(m for m in materials if m.kind.value == "improvement")
    assert carried.title.startswith(open_action)
    assert carried.url and carried.url.endswith(f"/browse/{open_action}")


def test_cycle_closes_after_reviews_and_closing_activities_are_done(
    site: Sandbox, tmp_path: Path
) -> None:
    """All review sub-tasks done: lessons learned and policy update appear; once they are done
    the cycle is closed."""
    selection = _selection(site, tmp_path, count=1)
    settings = _settings(site, tmp_path / "data", selection=selection)
    store = open_store(settings.sync.resolved_state_url())
    first = _engine(settings, store).run_once()
    cycle_id, service = first.build.cycle.id, selection[0]
    ledger = store.ledger_rows("jira")
    for activity in load_raci().in_scope(Scope.SERVICE):
        row = ledger[f"slm:{cycle_id}:{service}:{activity.id}"]
        _jira(site, "POST", f"issue/{row.ticket_key}/transitions", {"transition": {"id": "31"}})
    # Cycles read the tickets changed since the last read through the search, which shows a
    # change only after the index lag (a cycle at once would see it one cycle later)
    time.sleep(INDEX_LAG_MS / 1000 + 0.1)
    closing = _engine(settings, store).run_once()
    assert closing.phase.state.value == "closing"
    opened = {o.key for o in closing.summary.outcomes if o.action.value == "create"}
    assert opened == {
        f"slm:{cycle_id}:cycle:lessons_learned",
        f"slm:{cycle_id}:cycle:update_policies",
    }
    ledger = store.ledger_rows("jira")
    for key in opened:
        _jira(
            site,
            "POST",
            f"issue/{ledger[key].ticket_key}/transitions",
            {"transition": {"id": "31"}},
        )
    time.sleep(INDEX_LAG_MS / 1000 + 0.1)
    closed = _engine(settings, store).run_once()
    store.close()
    assert closed.phase.state.value == "closed"


def _adf_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("content") or []:
            yield from _adf_nodes(child)


@pytest.mark.parametrize("proxied", [False, True], ids=["api-url", "public-url"])
def test_pack_links_records_by_their_numbers(site: Sandbox, tmp_path: Path, proxied: bool) -> None:
    """The review ticket's pack, read back from Jira: problems, knowledge articles, breaches and
    the service link to the record in the ServiceNow stand-in with their number (or name) as the
    link text, at `servicenow.public_url` when set (tickets at `jira.public_url`); no sys_id is
    shown as text outside the gaps (which name the records an admin must fix); no ADF text node
    holds a raw line break or tab."""
    estate = site.estate
    with_problems = Counter(p.business_service for p in estate.problems)
    service = with_problems.most_common(1)[0][0]
    settings = _settings(site, tmp_path / "data", selection=[service])
    if proxied:
        settings.servicenow.public_url = "https://sn.proxy.example"
        settings.jira.public_url = "https://jira.proxy.example"
    base = settings.servicenow.public_url or site.servicenow_url
    store = open_store(settings.sync.resolved_state_url())
    result = _engine(settings, store).run_once()
    review = store.ledger_rows("jira")[f"slm:{result.build.cycle.id}:{service}:review"]
    store.close()
    jira = settings.jira.public_url or site.jira_url
    assert review.ticket_url == f"{jira}/browse/{review.ticket_key}"
    pack = result.build.packs[service]
    response = requests.get(
        f"{site.jira_url}/rest/api/3/issue/{review.ticket_key}",
        params={"fields": "description"},
        auth=AUTH,
        timeout=5,
    )
    description = response.json()["fields"]["description"]
    nodes = list(_adf_nodes(description))
    links = {
        n["text"]: mark["attrs"]["href"]
        for n in nodes
        if n["type"] == "text"
        for mark in n.get("marks", [])
        if mark["type"] == "link"
    }
    numbers = {p.sys_id: p.number for p in estate.problems}
    numbers |= {k.sys_id: k.number for k in estate.knowledge}
    kinds = {"problem", "knowledge"}
    shown = [m for m in pack.materials if m.kind.value in kinds]
    assert any(m.kind.value == "problem" for m in shown)
    for material in shown:
        assert material.source is not None
        table = material.source.table
        url = f"{base}/{table}.do?sys_id={material.key}"
        assert links[numbers[material.key]] == url, material
    assert pack.breaches, "the seeded estate breaches its agreements"
    incidents = {i.sys_id: i.number for i in estate.incidents}
    tasks = {r.sys_id: incidents[r.task] for r in estate.sla_records}
    for breach in pack.breaches:
        url = f"{base}/task_sla.do?sys_id={breach.record_key}"
        assert links[tasks[breach.record_key]] == url
    named = estate.service(service)
    assert links[named.name] == f"{base}/{named.sys_class_name}.do?sys_id={service}"
    texts = [n["text"] for n in nodes if n["type"] == "text"]
    assert not [t for t in texts if "\n" in t or "\t" in t]
    words = plain_text(description)
    before_gaps = words.split("\nGaps\n")[0] + words.split("\nExisting materials\n")[-1]
    assert re.search(r"\b[0-9a-f]{32}\b", before_gaps) is None
    assert "review:" not in words and "improvement:" not in words
