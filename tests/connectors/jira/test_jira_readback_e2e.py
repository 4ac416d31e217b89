"""Reading back what people do in Jira tickets (Cloud and Data Center stand-ins, real `jira`
client): their comments as themselves, due dates, assignees, closing and reopening."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests

from config import Settings
from connectors import TicketRef
from connectors.jira import JiraTarget
from review import Document, TicketSpec
from review.document import paragraph
from sandbox import Sandbox
from tests.sync.people import People

from .conftest import jira_people

pytestmark = pytest.mark.usefixtures("no_retry_waits")
COMMENTS = "GET /rest/api/{v}/issue/<key>/comment"


def _tickets(
    site: Sandbox, settings: Settings, plan: list[TicketSpec], count: int = 1
) -> tuple[JiraTarget, list[TicketRef]]:
    """Review tickets created by slm-sync (the cycle ticket and `count` reviews)."""
    target = JiraTarget.from_settings(settings)
    results = target.create(plan, {})
    refs = {r.spec_key: r.ref for r in results if r.ref is not None}
    reviews = [refs[s.key] for s in plan if s.key.endswith(":review")][:count]
    return target, reviews


def _route(site: Sandbox, template: str) -> str:
    return template.format(v="3" if site.jira_flavor == "cloud" else "2")


@pytest.fixture
def comment_caps(fresh_site: Sandbox) -> Iterator[Callable[[int, int], None]]:
    """Set the stand-in's embedded comment cap and comment page size; restored afterwards."""
    url = f"{fresh_site.jira_url}/__sandbox/knobs"

    def caps(embedded: int, page: int) -> None:
        knobs = {"embedded_comments": embedded, "comment_page_max": page}
        assert requests.post(url, json={"jira": knobs}, timeout=5).status_code == 200

    yield caps
    caps(20, 100)


def test_people_s_work_is_read_back_with_their_names(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """A person comments as themselves (two lines), sets the due date, assigns a colleague
    and closes the ticket; slm-sync's own note is there too. state(comments=True) names the
    person as author (not ours), keeps the line break, marks slm-sync's note as ours, and
    reads the due date, the assignee's e-mail and an aware resolution time."""
    settings = jira_settings(fresh_site)
    target, (ref,) = _tickets(fresh_site, settings, review_plan(fresh_site, 1))
    people = People(fresh_site, "jira")
    colleague = next(p for p in jira_people(fresh_site) if p.email != people.default.email)
    people.comment(ref, "Decision: raise the target to 99.5 %\nowner agrees")
    target.comment(ref, Document(blocks=(paragraph("Pack frozen by slm-sync."),)))
    people.set_due(ref, date(2026, 4, 30))
    people.assign(ref, colleague.email or "")
    before = datetime.now(UTC).replace(microsecond=0)
    people.close(ref)

    state = target.state([ref], comments=True)[ref.key]

    assert state.done and state.due == date(2026, 4, 30)
    assert state.assignee == colleague.email
    assert state.resolved is not None and state.resolved.utcoffset() is not None
    assert before - timedelta(seconds=1) <= state.resolved <= datetime.now(UTC)
    theirs, ours = state.comments
    assert (theirs.author, theirs.ours) == (people.default.email, False)
    assert theirs.text == "Decision: raise the target to 99.5 %\nowner agrees"
    assert ours.ours and ours.text == "Pack frozen by slm-sync."
    assert theirs.created <= ours.created


def test_reopening_clears_the_resolution_time(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """A ticket a person closed and reopened reads as open again, with no resolution time."""
    target, (ref,) = _tickets(fresh_site, jira_settings(fresh_site), review_plan(fresh_site, 1))
    people = People(fresh_site, "jira")
    people.close(ref)
    assert target.state([ref])[ref.key].resolved is not None
    people.reopen(ref)
    state = target.state([ref])[ref.key]
    assert not state.done and state.resolved is None and state.status == "To Do"


def test_comments_beyond_the_embedded_page_are_read_page_by_page(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    comment_caps: Callable[[int, int], None],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """Search embeds only 2 of 7 comments and the comment resource gives 3 a page: the other
    5 are read in two more requests, and all 7 come back once each, oldest first."""
    target, (ref,) = _tickets(fresh_site, jira_settings(fresh_site), review_plan(fresh_site, 1))
    comment_caps(2, 3)
    people = People(fresh_site, "jira")
    for number in range(7):
        people.comment(ref, f"Note {number}")
    requests.post(f"{fresh_site.jira_url}/__sandbox/reset", timeout=5)

    comments = target.state([ref], comments=True)[ref.key].comments

    assert [c.text for c in comments] == [f"Note {n}" for n in range(7)]
    assert calls(fresh_site)[_route(fresh_site, COMMENTS)] == 2


def test_states_without_comments_read_no_comments(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    comment_caps: Callable[[int, int], None],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """state() without `comments` makes one search for three tickets and no comment or
    profile read, even where comments go beyond the embedded page; their comments stay empty."""
    target, refs = _tickets(fresh_site, jira_settings(fresh_site), review_plan(fresh_site, 3), 3)
    comment_caps(1, 100)
    people = People(fresh_site, "jira")
    for ref in refs:
        people.comment(ref, "Decision: keep")
        people.comment(ref, "Decision: change")
    requests.post(f"{fresh_site.jira_url}/__sandbox/reset", timeout=5)

    states = target.state(refs)

    assert all(states[ref.key].comments == () for ref in refs)
    counted = calls(fresh_site)
    searches = {k: v for k, v in counted.items() if "/search" in k}
    assert sum(searches.values()) == 1, counted
    assert not any(k.endswith("/comment") or k.endswith("/myself") for k in counted), counted


def test_the_integration_account_is_read_once_for_many_tickets(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    calls: Callable[[Sandbox], dict[str, int]],
) -> None:
    """Telling our comments from people's reads /myself once per target, not per comment."""
    target, refs = _tickets(fresh_site, jira_settings(fresh_site), review_plan(fresh_site, 3), 3)
    people = People(fresh_site, "jira")
    for ref in refs:
        people.comment(ref, "Looks good")
        target.comment(ref, Document(blocks=(paragraph("ours"),)))
    requests.post(f"{fresh_site.jira_url}/__sandbox/reset", timeout=5)
    first = target.state(refs, comments=True)
    second = target.state(refs, comments=True)
    assert first == second
    assert all([c.ours for c in first[r.key].comments] == [False, True] for r in refs)
    assert calls(fresh_site)[_route(fresh_site, "GET /rest/api/{v}/myself")] == 1


def test_a_hidden_email_author_is_named_by_display_name(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """Cloud hides some people's e-mail: their comment is attributed to their display name
    (Data Center shows every e-mail)."""
    estate = fresh_site.estate
    hidden = estate.person(estate.deliberate["person_email_hidden"])
    target, (ref,) = _tickets(fresh_site, jira_settings(fresh_site), review_plan(fresh_site, 1))
    People(fresh_site, "jira").comment(ref, "Decision: retire", as_person=hidden.email)
    (comment,) = target.state([ref], comments=True)[ref.key].comments
    expected = hidden.name if fresh_site.jira_flavor == "cloud" else hidden.email
    assert (comment.author, comment.ours, comment.text) == (expected, False, "Decision: retire")


def test_a_hidden_email_author_the_directory_knows_is_named_by_e_mail(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """Where review.people maps a person's e-mail to their Jira account, their comment and
    their assignment are named by that e-mail, even where Cloud hides it."""
    estate = fresh_site.estate
    hidden = estate.person(estate.deliberate["person_email_hidden"])
    override = (
        {"jira_account_id": hidden.jira_account_id}
        if fresh_site.jira_flavor == "cloud"
        else {"jira_name": hidden.jira_name}
    )
    settings = jira_settings(fresh_site, people={hidden.email: override})
    target, (ref,) = _tickets(fresh_site, settings, review_plan(fresh_site, 1))
    people = People(fresh_site, "jira")
    people.comment(ref, "Decision: retire", as_person=hidden.email)
    people.assign(ref, hidden.email)
    state = target.state([ref], comments=True)[ref.key]
    assert [c.author for c in state.comments] == [hidden.email]
    assert state.assignee == hidden.email


def test_a_ticket_the_search_misses_is_read_by_key_with_the_same_fields(
    sandbox_lagging: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """A ticket just changed, within the search index lag, is still read whole: Cloud reads it
    through the lag (reconcileIssues), Data Center by key; due date and comments are there."""
    site = sandbox_lagging
    target, (ref,) = _tickets(site, jira_settings(site), review_plan(site, 1))
    people = People(site, "jira")
    people.set_due(ref, date(2026, 5, 1))
    people.comment(ref, "Decision: go")
    state: Any = target.state([ref], comments=True).get(ref.key)
    assert state is not None
    assert state.due == date(2026, 5, 1)
    assert [c.text for c in state.comments] == ["Decision: go"]


def test_an_improvement_people_link_is_listed_under_the_ticket(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """A person creates an improvement ticket and links it ("Relates"): linked() lists it,
    open, then done once they close it."""
    target, (ref,) = _tickets(fresh_site, jira_settings(fresh_site), review_plan(fresh_site, 1))
    people = People(fresh_site, "jira")
    key = people.link(ref, "Shorten the restore runbook")
    (linked,) = target.linked([ref])[ref.key]
    assert (linked.key, linked.title, linked.done) == (key, "Shorten the restore runbook", False)
    people.close(TicketRef(key, ""))
    assert [t.done for t in target.linked([ref])[ref.key]] == [True]
