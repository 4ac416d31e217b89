"""The ticket book: each cycle reads only the tickets that changed, in one search, and still
shows what people did in them. ServiceNow stand-in as the source, the Jira Cloud stand-in as the
target over HTTP, the tests acting as the people in the tickets (tests/sync/people.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

import connectors.jira.target
from config import Settings
from connectors import TicketRef
from review import activity_ticket_key, review_ticket_key
from sandbox import Sandbox
from sync.engine import Engine
from sync.state import StateStore, open_store

from .people import SN_PASSWORD, People
from .reviewing import reviewing_settings

pytestmark = pytest.mark.usefixtures("no_retry_waits")
LAG_MS = 1500  # the stand-in's search index lag while people act


@pytest.fixture
def site() -> Iterator[Sandbox]:
    running = Sandbox(seed=31, services=8, sla_records=600, index_lag_ms=0).start()
    yield running
    running.stop()


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Jira searches made by the target connector, by what they were for: one per request (a
    search that found nothing or was refused counts too, each further page one more)."""
    counted: Counter[str] = Counter()
    original = connectors.jira.target.search

    def counting(*args: Any, what: str = "issue search", **kwargs: Any) -> Iterator[Any]:
        counted[what] += 1
        for number, page in enumerate(original(*args, what=what, **kwargs)):
            counted[what] += 1 if number else 0
            yield page

    monkeypatch.setattr(connectors.jira.target, "search", counting)
    return counted


def _ref(store: StateStore, key: str) -> TicketRef:
    row = store.ledger_rows("jira")[key]
    return TicketRef(key=row.ticket_key or "", id=row.ticket_id or "", url=row.ticket_url)


def _state_reads(searches: Counter[str]) -> dict[str, int]:
    return {w: n for w, n in searches.items() if w in ("changed tickets", "ticket states")}


def test_an_idle_cycle_reads_the_state_of_its_tickets_in_one_search(
    site: Sandbox, tmp_path: Path, searches: Counter[str]
) -> None:
    """After the cycle that reads back what the first one wrote, a cycle in which nothing
    changed makes one Jira search in all (no per-ticket state reads, no read of the reviews'
    linked tickets), and so does a new engine on the same state store (a restart, `sync
    --once`): the stored states and links stand in for a read."""
    settings = reviewing_settings(site, tmp_path, reviews=6, index_lag_seconds=0.2)
    store = open_store(settings.sync.resolved_state_url())
    engine = Engine.from_settings(settings, store)
    first = engine.run_once()
    assert first.summary.as_counts()["created"] > 40
    engine.run_once()
    searches.clear()
    idle = engine.run_once()
    assert idle.summary.as_counts()["unchanged"] == first.summary.as_counts()["created"]
    assert dict(searches) == {"changed tickets": 1}

    searches.clear()
    restarted = Engine.from_settings(settings, store).run_once()
    assert restarted.summary.as_counts()["unchanged"] == first.summary.as_counts()["created"]
    assert dict(searches) == {"changed tickets": 1}
    assert idle.build.rebuilt == [] and restarted.build.packs.keys() == idle.build.packs.keys()
    store.close()


def test_what_people_do_shows_in_the_next_cycles_although_search_lags(
    site: Sandbox, tmp_path: Path, searches: Counter[str]
) -> None:
    """A person's comment and status change are not in search for a while (the stand-in's
    index lag is on): the cycle right after them cannot see them, and the next cycle's read,
    reaching back over the margin, does; every cycle makes one ticket search."""
    settings = reviewing_settings(site, tmp_path, reviews=2, index_lag_seconds=0.2)
    service = settings.review.selection[0]
    store = open_store(settings.sync.resolved_state_url())
    engine = Engine.from_settings(settings, store)
    first = engine.run_once()
    cycle = first.build.cycle.id
    engine.run_once()
    review = _ref(store, review_ticket_key(cycle, service))
    schedule = _ref(store, activity_ticket_key(cycle, "schedule_review", service))
    before = engine.run_once().build.packs[service].meeting
    assert before is not None and before.decisions == () and before.scheduled is None

    site.knobs.update({"index_lag_ms": LAG_MS})
    people = People(site, "jira")
    people.comment(review, "Decision: keep the availability target at 99.9 %")
    people.close(schedule)
    searches.clear()
    hidden = engine.run_once().build.packs[service].meeting
    assert hidden is not None and hidden.decisions == ()  # not in search yet
    time.sleep(LAG_MS / 1000 + 0.3)
    shown = engine.run_once().build.packs[service].meeting
    assert shown is not None
    assert [d.text for d in shown.decisions] == ["keep the availability target at 99.9 %"]
    assert shown.scheduled is not None
    assert _state_reads(searches) == {"changed tickets": 2}
    store.close()


def test_a_deleted_ticket_is_noticed_at_the_periodic_full_read(
    site: Sandbox, tmp_path: Path, searches: Counter[str]
) -> None:
    """A ticket a person deleted keeps its last known state in incremental cycles (nothing
    changed in search), and is gone after the next full read (`sync.ticket_full_read_seconds`),
    also for an engine started afterwards; deleting does not make later cycles read it."""
    settings = reviewing_settings(site, tmp_path, reviews=2, index_lag_seconds=0.2)
    service = settings.review.selection[0]
    store = open_store(settings.sync.resolved_state_url())
    engine = Engine.from_settings(settings, store)
    cycle = engine.run_once().build.cycle.id
    engine.run_once()
    doomed = _ref(store, activity_ticket_key(cycle, "schedule_review", service))
    jira_store = site.jira.site.store
    issue = jira_store.issues.pop(doomed.key)  # a person deletes it
    jira_store.by_id.pop(issue.id)

    engine.run_once()
    known = engine.book.known
    assert known is not None
    assert doomed.key in known.states and doomed.key not in known.gone

    engine.book.full_every_seconds = 0  # the full read is due
    searches.clear()
    engine.run_once()
    known = engine.book.known
    assert known is not None
    assert doomed.key not in known.states and doomed.key in known.gone
    assert _state_reads(searches) == {"changed tickets": 1}  # the gone ticket not read

    restarted = Engine.from_settings(settings, store)
    searches.clear()
    restarted.run_once()
    known = restarted.book.known
    assert known is not None and doomed.key in known.gone
    assert _state_reads(searches) == {"changed tickets": 1}
    # after the cycle the target reads live (the book answered during the cycle alone)
    assert engine.target.known_states is None  # type: ignore[attr-defined]
    assert restarted.target.state([doomed]) == {}
    store.close()


def test_an_idle_cycle_into_servicenow_reads_its_tasks_in_one_request(
    site: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ServiceNow target's equivalent: one Table API read of the tasks changed since the
    last read (none), no per-task state reads and no journal reads; a person's work note is
    read at the next cycle (the changed task, then its journal)."""
    settings = _into_servicenow(site, tmp_path, reviews=4)
    service = settings.review.selection[0]
    store = open_store(settings.sync.resolved_state_url())
    engine = Engine.from_settings(settings, store)
    first = engine.run_once()
    time.sleep(1.1)  # the stand-in's stamps are whole seconds: the read-back starts after them
    engine.run_once()
    sent: list[str] = []
    original = requests.Session.send

    def spy(session: requests.Session, request: requests.PreparedRequest, **kw: Any) -> Any:
        """Every request to the instance (the source's pull is one Batch API call)."""
        url = urlsplit(request.url or "")
        wanted = dict(parse_qsl(url.query)).get("sysparm_query", "")
        if url.path.endswith("/v1/batch"):
            sent.append("source pull")
        elif url.path.endswith("/table/task") and "sys_updated_on>=" in wanted:
            sent.append("changed tasks")
        elif url.path.endswith("/vtb_task") and "sys_idIN" in wanted:
            sent.append("task states")
        elif url.path.endswith("/sys_journal_field"):
            sent.append("journal")
        else:
            sent.append(f"{request.method} {url.path}?{wanted}")
        return original(session, request, **kw)

    monkeypatch.setattr(requests.Session, "send", spy)
    idle = engine.run_once()
    assert idle.summary.as_counts()["unchanged"] == first.summary.as_counts()["created"]
    # every request to the instance: the source's pull, and the target's one read of our
    # tasks and of their child tasks changed since the last read (none)
    assert sent == ["source pull", "changed tasks"]

    review = _ref_in(store, "servicenow", review_ticket_key(first.build.cycle.id, service))
    People(site, "servicenow").comment(review, "Decision: keep the availability target")
    sent.clear()
    shown = engine.run_once().build.packs[service].meeting
    assert shown is not None and [d.text for d in shown.decisions] == [
        "keep the availability target"
    ]
    # keyset paging ends on an empty page: the changed task and its journal, two requests each;
    # the review's update reads its record ahead (one sys_idIN query, no empty page after it)
    reads = [s for s in sent if s in ("changed tasks", "task states", "journal")]
    assert reads == ["changed tasks", "changed tasks", "journal", "journal", "task states"]
    store.close()


def _into_servicenow(site: Sandbox, tmp_path: Path, *, reviews: int) -> Settings:
    """Reviewing settings with ServiceNow as the target and no read margin (the stand-in
    commits at once)."""
    settings = reviewing_settings(site, tmp_path, reviews=reviews, index_lag_seconds=0.2)
    settings.sync.target = "servicenow"
    settings.sync.ticket_read_margin_seconds = 0
    return settings


def _ref_in(store: StateStore, target: str, key: str) -> TicketRef:
    row = store.ledger_rows(target)[key]
    return TicketRef(key=row.ticket_key or "", id=row.ticket_id or "", url=row.ticket_url)


def test_a_servicenow_edit_in_the_same_second_as_our_write_is_still_read(
    site: Sandbox, tmp_path: Path
) -> None:
    """ServiceNow stamps `sys_updated_on` in whole seconds: a person's work note landing in the
    same second as our own last write leaves the stamp as it was. The task's `sys_mod_count`
    moved, so the next cycle still reads the note (the stand-in's clock is held in one second
    for every write here)."""
    settings = reviewing_settings(site, tmp_path, reviews=1, index_lag_seconds=0.2)
    settings.sync.target = "servicenow"
    service = settings.review.selection[0]
    store = open_store(settings.sync.resolved_state_url())
    engine = Engine.from_settings(settings, store)
    site.servicenow.clock = datetime.now(UTC).replace(microsecond=0)
    try:
        first = engine.run_once()
        engine.run_once()  # the book now holds every task at the held second
        review = _ref_in(store, "servicenow", review_ticket_key(first.build.cycle.id, service))
        before = _task(site, review.id)
        People(site, "servicenow").comment(review, "Decision: keep the availability target")
        after = _task(site, review.id)
        assert after["sys_updated_on"] == before["sys_updated_on"], "one second for all writes"
        assert int(after["sys_mod_count"]) > int(before["sys_mod_count"])
        shown = engine.run_once().build.packs[service].meeting
    finally:
        site.servicenow.clock = None
    assert shown is not None and [d.text for d in shown.decisions] == [
        "keep the availability target"
    ]
    store.close()


def _task(site: Sandbox, sys_id: str) -> dict[str, str]:
    response = requests.get(
        f"{site.servicenow_url}/api/now/table/vtb_task/{sys_id}",
        params={"sysparm_fields": "sys_updated_on,sys_mod_count"},
        auth=("slm-demo", "demo-password"),
        timeout=5,
    )
    response.raise_for_status()
    return dict(response.json()["result"])


def test_a_full_read_into_servicenow_keeps_what_people_did_in_unchanged_tasks(
    site: Sandbox, tmp_path: Path
) -> None:
    """The periodic full read into ServiceNow skips the journals of tasks that did not change
    since the book read them, but still answers for them: a sub-task a person closed before
    stays done, its review's meeting stays scheduled, and no task counts as gone."""
    settings = reviewing_settings(site, tmp_path, reviews=2, index_lag_seconds=0.2)
    settings.sync.target = "servicenow"
    service = settings.review.selection[0]
    store = open_store(settings.sync.resolved_state_url())
    engine = Engine.from_settings(settings, store)
    cycle = engine.run_once().build.cycle.id
    schedule = _ref_in(store, "servicenow", activity_ticket_key(cycle, "schedule_review", service))
    People(site, "servicenow").close(schedule)
    time.sleep(1.1)  # whole-second stamps: the close is after the first read's second
    seen = engine.run_once().build.packs[service].meeting
    assert seen is not None and seen.scheduled is not None

    engine.book.full_every_seconds = 0  # the hourly full read is due
    kept = engine.run_once().build.packs[service].meeting
    known = engine.book.known
    assert known is not None and known.gone == set()
    assert known.states[schedule.key].done
    assert engine.target.state([schedule])[schedule.key].done  # read live after the cycle
    assert kept is not None and kept.scheduled == seen.scheduled
    store.close()


class _OneReview:
    """Two reviews into the Jira stand-in, the first service's review ticket, and its meeting's
    improvements as the next cycle shows them (each call runs a cycle, counting its searches)."""

    def __init__(self, site: Sandbox, tmp_path: Path, searches: Counter[str]) -> None:
        self.settings = reviewing_settings(site, tmp_path, reviews=2, index_lag_seconds=0.2)
        self.service = self.settings.review.selection[0]
        self.store = open_store(self.settings.sync.resolved_state_url())
        self.engine = Engine.from_settings(self.settings, self.store)
        cycle = self.engine.run_once().build.cycle.id
        self.engine.run_once()
        self.review = _ref(self.store, review_ticket_key(cycle, self.service))
        self.searches = searches

    def improvements(self, engine: Engine | None = None) -> dict[str, bool]:
        self.searches.clear()
        meeting = (engine or self.engine).run_once().build.packs[self.service].meeting
        assert meeting is not None
        return {m.number or "": m.open for m in meeting.improvements}


def test_improvements_done_or_deleted_show_in_the_next_cycles_in_the_same_search(
    site: Sandbox, tmp_path: Path, searches: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """People link improvement tickets to a review, later finish one, reopen it and delete
    another. A linked ticket's change does not touch the review (Jira keeps the status on the
    other issue), yet the next cycles show it, through the stand-in's index lag: the book's one
    search also asks for the linked tickets changed in its window. No cycle reads the links
    apart from that search; a deleted linked ticket (Jira then refuses the whole query, naming
    it) costs one cycle two more searches and one read by key, and is then no longer asked
    for."""
    one = _OneReview(site, tmp_path, searches)
    review = one.review
    by_key: list[str] = []
    original = connectors.jira.target.JiraTarget._get_issue

    def get_issue(target: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        by_key.append(key)
        return original(target, key, *args, **kwargs)

    monkeypatch.setattr(connectors.jira.target.JiraTarget, "_get_issue", get_issue)
    site.knobs.update({"index_lag_ms": LAG_MS})
    people = People(site, "jira")
    fix = people.link(review, "Add a second MX relay")
    old = people.link(review, "Retire the old relay")
    time.sleep(LAG_MS / 1000 + 0.3)
    assert one.improvements() == {fix: True, old: True}
    assert _reads(searches) == {"changed tickets": 1}

    _age(site, timedelta(hours=1))  # the improvement is done an hour after our last write
    updated = site.jira.site.store.issues[review.key].updated
    people.close(TicketRef(fix, ""))
    assert site.jira.site.store.issues[review.key].updated == updated  # the review untouched
    time.sleep(LAG_MS / 1000 + 0.3)
    assert one.improvements() == {fix: False, old: True}
    assert _reads(searches) == {"changed tickets": 1}

    _age(site, timedelta(hours=1))  # and reopened: the review is still under way
    people.reopen(TicketRef(fix, ""))
    time.sleep(LAG_MS / 1000 + 0.3)
    assert one.improvements() == {fix: True, old: True}
    assert _reads(searches) == {"changed tickets": 1}

    _age(site, timedelta(hours=1))
    people.delete(TicketRef(old, ""))
    assert one.improvements() == {fix: True}
    # refused (naming the deleted key), ours alone, the other watched key; the deleted one by key
    assert _reads(searches) == {"changed tickets": 3} and by_key == [old]
    assert one.improvements() == {fix: True}
    assert _reads(searches) == {"changed tickets": 1} and by_key == [old]
    assert one.improvements(Engine.from_settings(one.settings, one.store)) == {fix: True}
    one.store.close()


@pytest.mark.parametrize("touched", [True, False], ids=["history", "no history"])
def test_an_improvement_a_person_unlinks_leaves_the_review(
    site: Sandbox, tmp_path: Path, searches: Counter[str], touched: bool
) -> None:
    """A person removes the link between the review and an improvement (both issues stay):
    Jira writes the removal into both issues' history, which changes their `updated`, so the
    next cycle's one search, through the index lag, returns the review with its links as they
    are now and the improvement leaves the pack. Were the removal to leave `updated` alone
    (the stand-in's `link_changes_touch` off), the periodic full read still drops it."""
    one = _OneReview(site, tmp_path, searches)
    people = People(site, "jira")
    fix = people.link(one.review, "Add a second MX relay")
    old = people.link(one.review, "Retire the old relay")
    assert one.improvements() == {fix: True, old: True}
    _age(site, timedelta(hours=1))  # an hour after our last write
    site.jira.realism.update({"link_changes_touch": touched})
    site.knobs.update({"index_lag_ms": LAG_MS})
    people.unlink(one.review, old)
    assert old in site.jira.site.store.issues  # the issue itself stays
    time.sleep(LAG_MS / 1000 + 0.3)
    if touched:
        assert one.improvements() == {fix: True}
        assert _reads(searches) == {"changed tickets": 1}
    else:
        assert one.improvements() == {fix: True, old: True}  # nothing says it changed
        one.engine.book.full_every_seconds = 0  # the hourly full read is due
        assert one.improvements() == {fix: True}
    assert one.improvements(Engine.from_settings(one.settings, one.store)) == {fix: True}
    one.store.close()


def test_an_improvement_moved_to_another_project_is_followed_by_its_id(
    site: Sandbox, tmp_path: Path, searches: Counter[str]
) -> None:
    """A person moves a linked improvement to another project (it gets a new key; Jira still
    answers its old one) and later finishes it: the next cycle shows it under its new key as
    done, from the same one search (the link is matched by the issue's id, not its key)."""
    one = _OneReview(site, tmp_path, searches)
    people = People(site, "jira")
    fix = people.link(one.review, "Add a second MX relay")
    assert one.improvements() == {fix: True}
    _age(site, timedelta(hours=1))
    jira = site.jira.site.store
    with jira.lock:
        moved = jira.move(jira.issues[fix], "ITSD")
    people.close(TicketRef(moved, ""))
    assert one.improvements() == {moved: False}
    assert _reads(searches) == {"changed tickets": 1}
    one.store.close()


def _reads(searches: Counter[str]) -> dict[str, int]:
    """The searches that read tickets' states and links (not those of writing a changed pack)."""
    return {w: n for w, n in searches.items() if w != "tickets to update"}


def _age(site: Sandbox, by: timedelta) -> None:
    """Every issue last changed `by` earlier than it was (what a quiet hour does), indexed."""
    store = site.jira.site.store
    with store.lock:
        for issue in store.issues.values():
            issue.updated -= by
            store.reindex(issue, lag=0.0)


def test_servicenow_child_tasks_added_closed_or_deleted_show_without_reading_them_apart(
    site: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """People add child tasks (improvement actions) under a review task in ServiceNow, in two
    task tables, later close one and delete the other. A child's change does not touch its
    parent's `sys_updated_on`, yet the next cycle shows it: the book's one read over `task`
    also asks for the children of our tasks changed in its window. No cycle reads the
    children by parent (the old `linked()` read). A deleted child leaves nothing to read: it
    stays until the next full read (`sync.ticket_full_read_seconds`), which drops it."""
    settings = _into_servicenow(site, tmp_path, reviews=2)
    service = settings.review.selection[0]
    store = open_store(settings.sync.resolved_state_url())
    engine = Engine.from_settings(settings, store)
    cycle = engine.run_once().build.cycle.id
    time.sleep(1.1)  # whole-second stamps: the read-back starts after the first cycle's writes
    engine.run_once()
    review = _ref_in(store, "servicenow", review_ticket_key(cycle, service))
    reads = _target_reads(site, monkeypatch)

    def improvements() -> dict[str, bool]:
        reads.clear()
        meeting = engine.run_once().build.packs[service].meeting
        assert meeting is not None
        assert "children by parent" not in reads, reads
        return {m.number or "": m.open for m in meeting.improvements}

    people = People(site, "servicenow")
    fix = people.link(review, "Add a second MX relay")  # a vtb_task under the review
    old = _sn_insert(site, "incident", {"short_description": "Retire the old relay",
                                        "parent": review.id})  # fmt: skip
    assert improvements() == {fix: True, old: True}
    assert reads.count("changed tasks") == 2  # the children, then keyset paging's empty page

    # whole-second stamps: a read starting in the second of a write reads it again; the next
    # cycle reads back the review's own update (its description lists them), then it is idle
    time.sleep(1.1)
    improvements()
    time.sleep(1.1)
    assert improvements() == {fix: True, old: True}
    assert reads == ["changed tasks"]  # idle again: one request

    _age_servicenow(site, timedelta(hours=1))  # the child is closed an hour after our writes
    before = _sn_row(site, review.id)
    people.close(TicketRef(fix, _sn_id(site, fix)))
    assert _sn_row(site, review.id) == before  # the review untouched
    assert improvements() == {fix: False, old: True}
    assert reads.count("changed tasks") == 2

    _age_servicenow(site, timedelta(hours=1))
    site.servicenow.delete("incident", _sn_id(site, old))  # a person deletes the other child
    # the documented limit: no row is left to read, so the incremental cycles keep it
    assert improvements() == {fix: False, old: True}
    engine.book.full_every_seconds = 0  # the hourly full read is due
    assert improvements() == {fix: False}
    engine.book.full_every_seconds = 3600
    assert improvements() == {fix: False}
    restarted = Engine.from_settings(settings, store).run_once().build.packs[service].meeting
    assert restarted is not None
    assert {m.number: m.open for m in restarted.improvements} == {fix: False}
    store.close()


def _target_reads(site: Sandbox, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Table API reads of tasks sent to the ServiceNow stand-in, by what they were for."""
    sent: list[str] = []
    original = requests.Session.send

    def spy(session: requests.Session, request: requests.PreparedRequest, **kw: Any) -> Any:
        url = urlsplit(request.url or "")
        wanted = dict(parse_qsl(url.query)).get("sysparm_query", "")
        if (request.url or "").startswith(site.servicenow_url) and request.method == "GET":
            if url.path.endswith("/table/task") and "parentIN" in wanted:
                sent.append("children by parent")
            elif url.path.endswith("/table/task") and "sys_updated_on>=" in wanted:
                sent.append("changed tasks")
        return original(session, request, **kw)

    monkeypatch.setattr(requests.Session, "send", spy)
    return sent


def _sn_insert(site: Sandbox, table: str, fields: dict[str, str]) -> str:
    """A record a person creates (the default person of tests/sync/people.py); its number."""
    person = People(site, "servicenow").default
    response = requests.post(
        f"{site.servicenow_url}/api/now/table/{table}",
        json=fields,
        auth=(person.email, SN_PASSWORD),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["result"]["number"])


def _sn_id(site: Sandbox, number: str) -> str:
    """The sys_id of the task numbered `number`, from the stand-in's store."""
    rows = site.servicenow.store.rows("task")
    return next(row["sys_id"] for row in rows if row.get("number") == number)


def _sn_row(site: Sandbox, sys_id: str) -> dict[str, str]:
    found = site.servicenow.store.find("task", sys_id)
    assert found is not None
    return dict(found)


def _age_servicenow(site: Sandbox, by: timedelta) -> None:
    """Every task last changed `by` earlier than it was (what a quiet hour does)."""
    store = site.servicenow.store
    with store.lock:
        for row in store.rows("task"):
            updated = datetime.strptime(row["sys_updated_on"], "%Y-%m-%d %H:%M:%S")
            row["sys_updated_on"] = (updated - by).strftime("%Y-%m-%d %H:%M:%S")
        store.version += 1
