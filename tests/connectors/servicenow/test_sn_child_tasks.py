"""The ticket book's read of ServiceNow takes our tasks' child tasks along (`read_states`):
one keyset read over `task` in two NQ groups, and `linked()` answering from the book."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from config import Settings
from connectors import KnownStates, StateRead, TicketRef
from connectors.base import Cursor
from connectors.servicenow.paging import KeysetPager
from connectors.servicenow.streams import StreamSpec
from connectors.servicenow.target import STAMP
from connectors.servicenow.wiring import build_client, build_guard
from sandbox import Sandbox

from .test_sn_readback_e2e import _target

pytestmark = pytest.mark.usefixtures("no_retry_waits")
JOURNAL = "sys_journal_field"


def _ours(site: Sandbox, key: str, parent: str = "") -> dict[str, str]:
    fields = {"correlation_display": "slm-sync", "correlation_id": key, "parent": parent}
    return site.servicenow.insert("vtb_task", short_description=key, **fields)


def _child(site: Sandbox, table: str, parent: str, title: str) -> dict[str, str]:
    return site.servicenow.insert(table, short_description=title, parent=parent)


def _links(read: StateRead, row: dict[str, str]) -> dict[str, bool] | None:
    links = read.states[row["number"]].links
    return None if links is None else {link.key: link.done for link in links}


def test_keyset_conditions_are_repeated_in_every_nq_group() -> None:
    """`A^NQB^C` reads `A OR (B AND C)`: the window, the cursor and the bound go into each
    group, the order once at the end."""
    settings = Settings(servicenow={"url": "http://localhost:1", "username": "u", "password": "p"})
    pager = KeysetPager(
        build_client(settings), build_guard(settings), StreamSpec("task", ("number",)), 10,
        extra="sys_updated_on>=2026-01-01 00:00:00", until="2026-01-02 00:00:00",
        either=("correlation_display=a", "parent.correlation_display=a"),
    )  # fmt: skip
    cursor = Cursor("2026-01-01 10:00:00", "0" * 31 + "1")
    first, second = pager.condition(cursor).split("^NQ")
    for group, start in ((first, "correlation_display=a^"), (second, "parent.correlation")):
        assert group.startswith(start)
        assert "sys_updated_on>=2026-01-01 00:00:00" in group
        assert "sys_id>" + "0" * 31 + "1^ORsys_updated_on>2026-01-01 10:00:00" in group
        assert "sys_updated_on<=2026-01-02 00:00:00" in group
    assert "ORDERBY" not in first and second.endswith("^ORDERBYsys_updated_on^ORDERBYsys_id")


def test_a_full_read_takes_every_child_of_any_class_in_one_read(sandbox_small: Sandbox) -> None:
    """Children of our tasks (vtb_task, incident) are their links; our own sub-tasks are
    states, not links; a grandchild (its parent not ours) is nobody's. One read over `task`
    (a page and keyset paging's empty page), no read by parent."""
    site = sandbox_small
    target, client = _target(site)
    review = _ours(site, "slm:2026:svc:review")
    sub = _ours(site, "slm:2026:svc:schedule", parent=review["sys_id"])
    fix = _child(site, "vtb_task", review["sys_id"], "Add a relay")
    incident = _child(site, "incident", review["sys_id"], "Retire the old relay")
    _child(site, "problem", fix["sys_id"], "grandchild")
    on_sub = _child(site, "problem", sub["sys_id"], "a child of the sub-task")

    read = target.read_states(None, 0)
    assert _links(read, review) == {fix["number"]: False, incident["number"]: False}
    assert _links(read, sub) == {on_sub["number"]: False}
    assert set(read.states) == {review["number"], sub["number"]}
    tasks = [table for table in client.listed if table != JOURNAL]
    assert tasks == ["task", "task"]
    assert "^NQ" in client.queries[0] and "parentIN" not in client.queries[0]
    (url,) = {
        link.url for link in read.states[review["number"]].links or () if "incident" in link.url
    }
    assert incident["sys_id"] in url

    target.known_states = KnownStates(dict(read.states))
    client.listed.clear()
    assert {link.key for link in target.linked([_ref(review)])[review["number"]]} == {
        fix["number"], incident["number"],
    }  # fmt: skip
    assert client.listed == []  # from the book


def test_an_incremental_read_amends_the_links_the_book_holds(sandbox_small: Sandbox) -> None:
    """Since the last read: a child closed, one moved between two of our tasks, one added, and
    a task of ours created with a child. The unchanged parents come back with their links
    amended and without a journal read; the new task's links are complete (it is younger than
    the window). A task the book holds without links keeps None (linked() reads it)."""
    site = sandbox_small
    target, client = _target(site)
    a = _ours(site, "slm:2026:a:review")
    b = _ours(site, "slm:2026:b:review")
    c = _ours(site, "slm:2026:c:review")
    closing = _child(site, "vtb_task", a["sys_id"], "closing")
    moving = _child(site, "incident", a["sys_id"], "moving")
    full = target.read_states(None, 0)
    known = dict(full.states)
    known[c["number"]] = replace(known[c["number"]], links=None)
    target.known_states = KnownStates(known)

    site.servicenow.update("vtb_task", closing["sys_id"], state="3")
    site.servicenow.update("incident", moving["sys_id"], parent=b["sys_id"])
    added = _child(site, "problem", b["sys_id"], "added")
    _child(site, "vtb_task", c["sys_id"], "under a task without known links")
    d = _ours(site, "slm:2026:d:review")
    under_d = _child(site, "vtb_task", d["sys_id"], "under a new task")
    client.listed.clear()
    read = target.read_states(full.mark, 0)

    assert _links(read, a) == {closing["number"]: True}
    assert _links(read, b) == {moving["number"]: False, added["number"]: False}
    assert _links(read, d) == {under_d["number"]: False}
    assert c["number"] not in read.states  # nothing of its own changed, links unknown
    assert read.states[a["number"]].comments == full.states[a["number"]].comments
    assert client.listed.count(JOURNAL) <= 2  # d's journal only (a page and the empty one)
    assert [table for table in client.listed if table != JOURNAL] == ["task", "task"]


def test_an_old_task_new_to_the_book_has_no_links_until_read_whole(
    sandbox_small: Sandbox,
) -> None:
    """A task of ours the book does not hold, created before the window (a label put back,
    a lost store entry), may have children the window misses: its links are None (`linked`
    reads them). One created inside the window has every child in it: its links are known."""
    site = sandbox_small
    target, client = _target(site)
    site.servicenow.clock = datetime.now(UTC) - timedelta(hours=1)
    try:
        old = _ours(site, "slm:2026:old:review")
        _child(site, "vtb_task", old["sys_id"], "an hour old")
    finally:
        site.servicenow.clock = None
    mark = datetime.now(UTC).strftime(STAMP)
    site.servicenow.update("vtb_task", old["sys_id"], short_description="touched")
    new = _ours(site, "slm:2026:new:review")
    target.known_states = KnownStates({})
    read = target.read_states(mark, 0)
    assert _links(read, old) is None
    assert _links(read, new) == {}

    target.known_states = KnownStates(dict(read.states))
    client.listed.clear()
    assert [link.title for link in target.linked([_ref(old)])[old["number"]]] == ["an hour old"]
    assert client.listed == ["task", "task"]  # read by parent: a page and the empty one


def _ref(row: dict[str, str]) -> TicketRef:
    return TicketRef(row["number"], row["sys_id"])
