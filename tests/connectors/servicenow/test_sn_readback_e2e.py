"""Reading back what people do in ServiceNow review tasks (stand-in over HTTP, real pysnow
client): work notes as themselves from sys_journal_field, due dates, assignees, closing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from config import Settings
from connectors import TicketRef
from connectors.servicenow import ServiceNowTarget
from connectors.servicenow.client import TableResult
from connectors.servicenow.people import PeopleDirectory
from connectors.servicenow.wiring import build_client, build_guard
from review import Document, TicketKind, TicketSpec
from review import document as doc
from sandbox import Sandbox
from tests.sync.people import People

from .conftest import settings_for

pytestmark = pytest.mark.usefixtures("no_retry_waits")
MORNING = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
JOURNAL = "sys_journal_field"


class Recording:
    """The real pysnow client, recording which tables list() reads (the stand-in counts
    requests by route only, and every table shares one route)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.listed: list[str] = []
        self.queries: list[str] = []

    def list(self, table: str, *, query: str, fields: Sequence[str], limit: int) -> TableResult:
        self.listed.append(table)
        self.queries.append(query)
        result: TableResult = self.inner.list(table, query=query, fields=fields, limit=limit)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _target(site: Sandbox, **servicenow: Any) -> tuple[ServiceNowTarget, Recording]:
    settings: Settings = settings_for(site, **servicenow)
    client, guard = Recording(build_client(settings)), build_guard(settings)
    people = PeopleDirectory(client, guard, settings.servicenow)
    target = ServiceNowTarget(client, settings.servicenow, guard, people, site.servicenow_url)
    return target, client


def _ticket(target: ServiceNowTarget) -> TicketRef:
    body = Document(blocks=(doc.paragraph("Review the service."),))
    spec = TicketSpec(key="slm:2026:svc:review", kind=TicketKind.REVIEW, title="Review", body=body)
    ref = target.create([spec], {})[0].ref
    assert ref is not None
    return ref


def _tasks(site: Sandbox, count: int) -> list[TicketRef]:
    """`count` review tasks written in-process (faster than `count` inserts over HTTP)."""
    rows = [site.servicenow.insert("vtb_task", short_description=f"t{n}") for n in range(count)]
    return [TicketRef(row["number"], row["sys_id"]) for row in rows]


def test_people_s_work_is_read_back_with_their_names(sandbox_small: Sandbox) -> None:
    """A person writes a two-line work note as themselves, sets the due date, assigns a
    colleague and closes the task; slm-sync's own work note comes after. state(comments=True)
    names the person by e-mail (not ours), slm-sync's note as ours, and reads the due date,
    the assignee's e-mail and closed_at as an aware UTC time."""
    site = sandbox_small
    target, _ = _target(site)
    ref = _ticket(target)
    people = People(site, "servicenow")
    colleague = next(p for p in site.estate.people if p.email != people.default.email)
    site.servicenow.clock = MORNING
    people.comment(ref, "Decision: raise the target to 99.5 %\nowner agrees")
    site.servicenow.clock = MORNING + timedelta(minutes=1)
    target.comment(ref, Document(blocks=(doc.paragraph("Pack frozen by slm-sync."),)))
    people.set_due(ref, date(2026, 4, 30))
    people.assign(ref, colleague.email)
    site.servicenow.clock = MORNING + timedelta(minutes=2)
    people.close(ref)

    state = target.state([ref], comments=True)[ref.key]

    assert state.done and state.due == date(2026, 4, 30)
    assert state.assignee == colleague.email
    assert state.resolved == MORNING + timedelta(minutes=2)
    theirs, ours = state.comments
    assert (theirs.author, theirs.ours, theirs.created) == (people.default.email, False, MORNING)
    assert theirs.text == "Decision: raise the target to 99.5 %\nowner agrees"
    assert (ours.author, ours.ours) == ("integration.user", True)
    assert "Pack frozen by slm-sync." in ours.text


def test_reopening_clears_the_closing_time(sandbox_small: Sandbox) -> None:
    """A task a person closed and reopened reads as open again, without closed_at."""
    target, _ = _target(sandbox_small)
    ref = _ticket(target)
    people = People(sandbox_small, "servicenow")
    people.close(ref)
    assert target.state([ref])[ref.key].resolved is not None
    people.reopen(ref)
    state = target.state([ref])[ref.key]
    assert not state.done and state.resolved is None and state.status == "2"


def test_journals_of_many_tasks_take_one_query_per_fifty(sandbox_small: Sandbox) -> None:
    """60 tasks with a work note each: their journals are read with two queries (50 + 10
    tasks; each one page and the empty page that ends it), not one per task, and every note
    lands on its own task."""
    site = sandbox_small
    target, client = _target(site)
    refs = _tasks(site, 60)
    person = site.estate.people[3]
    for number, ref in enumerate(refs):
        site.servicenow.update_as(
            person.user_name, "vtb_task", ref.id, {"work_notes": f"n{number}"}
        )

    states = target.state(refs, comments=True)

    assert [states[r.key].comments[0].text for r in refs] == [f"n{n}" for n in range(60)]
    assert {c.author for r in refs for c in states[r.key].comments} == {person.email}
    journal = [q for t, q in zip(client.listed, client.queries, strict=True) if t == JOURNAL]
    assert len({q.split("^elementIN")[0] for q in journal}) == 2
    assert len(journal) == 4


def test_a_long_journal_is_read_in_keyset_pages(sandbox_small: Sandbox) -> None:
    """With 7 rows a page, 20 entries (several in one second) come back in 3 pages plus the
    empty one that ends the read: each once, oldest first."""
    site = sandbox_small
    target, client = _target(site, page_size=7)
    refs = _tasks(site, 2)
    for number in range(20):
        site.servicenow.clock = MORNING + timedelta(seconds=number // 3)
        ref = refs[number % 2]
        site.servicenow.update_as("admin", "vtb_task", ref.id, {"comments": f"c{number:02d}"})

    states = target.state(refs, comments=True)

    for index, ref in enumerate(refs):
        texts = [c.text for c in states[ref.key].comments]
        assert sorted(texts) == [f"c{n:02d}" for n in range(index, 20, 2)]
        stamps = [c.created for c in states[ref.key].comments]
        assert stamps == sorted(stamps)
    assert client.listed.count(JOURNAL) == 4


def test_states_without_comments_read_no_journal(sandbox_small: Sandbox) -> None:
    """state() without `comments` reads no sys_journal_field row and no user."""
    site = sandbox_small
    target, client = _target(site)
    refs = _tasks(site, 3)
    site.servicenow.update("vtb_task", refs[0].id, work_notes="Decision: keep")
    states = target.state(refs)
    assert all(states[r.key].comments == () for r in refs)
    assert set(client.listed) == {"vtb_task"}


def test_with_an_oauth_token_our_notes_are_told_by_the_token_s_user(
    sandbox_small: Sandbox,
) -> None:
    """With a Bearer token and no username, the integration user is the one the instance names
    for gs.getUserID() (read once): its notes are ours, a person's are not."""
    site = sandbox_small
    site.servicenow.insert("sys_user", user_name="admin", name="System Administrator", email="")
    target, client = _target(site, username=None, password=None, oauth_token="token")
    ref = _ticket(target)
    target.comment(ref, Document(blocks=(doc.paragraph("ours"),)))
    People(site, "servicenow").comment(ref, "theirs")
    for _ in range(2):
        comments = target.state([ref], comments=True)[ref.key].comments
        assert sorted((c.text, c.ours) for c in comments) == [("ours", True), ("theirs", False)]
    assert target.integration_user() == "admin"
    assert client.listed.count("sys_user") == 2  # the token's user once, the writers once


def test_a_task_without_due_date_or_assignee_reads_empty(sandbox_small: Sandbox) -> None:
    """No due date, nobody assigned, never closed: None, "" and None."""
    target, _ = _target(sandbox_small)
    ref = _ticket(target)
    state = target.state([ref], comments=True)[ref.key]
    assert (state.due, state.assignee, state.resolved, state.comments) == (None, "", None, ())


def test_writers_are_named_by_user_name_when_they_have_no_e_mail(
    sandbox_small: Sandbox, make_target: Callable[..., ServiceNowTarget]
) -> None:
    """A writer without a sys_user e-mail (a system account) is named by user name."""
    target = make_target(sandbox_small)
    ref = _ticket(target)
    sandbox_small.servicenow.update_as("system", "vtb_task", ref.id, {"work_notes": "auto"})
    (comment,) = target.state([ref], comments=True)[ref.key].comments
    assert (comment.author, comment.ours) == ("system", False)


def test_an_improvement_people_link_is_listed_under_the_ticket(sandbox_small: Sandbox) -> None:
    """A person creates a child task of the review task: linked() lists it (it carries no
    slm-sync marker), and reads it done once closed."""
    target, _ = _target(sandbox_small)
    ref = _ticket(target)
    people = People(sandbox_small, "servicenow")
    number = people.link(ref, "Shorten the restore runbook")
    (linked,) = target.linked([ref])[ref.key]
    assert (linked.key, linked.title, linked.done) == (number, "Shorten the restore runbook", False)
    row = next(r for r in sandbox_small.servicenow.store.rows("vtb_task") if r["number"] == number)
    people.close(TicketRef(number, row["sys_id"]))
    assert [t.done for t in target.linked([ref])[ref.key]] == [True]
