"""Reading ahead the tickets a cycle is about to write (Cloud and Data Center stand-ins, real
`jira` client): one search instead of a GET per update and per attachment listing, never at the
cost of a person's edit or of our own last write."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from config import Settings
from connectors import TicketRef
from connectors.jira import JiraTarget
from review import TicketSpec
from sandbox import Sandbox
from tests.sync.people import People

pytestmark = pytest.mark.usefixtures("no_retry_waits")
SEARCH = "POST /rest/api/3/search/jql"
GET = "GET /rest/api/{v}/issue/<key>"
PUT = "PUT /rest/api/{v}/issue/<key>"


def _reviews(
    site: Sandbox, settings: Settings, plan: list[TicketSpec]
) -> tuple[JiraTarget, list[tuple[TicketSpec, TicketRef]]]:
    """The plan's tickets created by one process, and a new process's target for the next
    cycle (nothing read yet); the review specs with their tickets."""
    results = JiraTarget.from_settings(settings).create(plan, {})
    refs = {r.spec_key: r.ref for r in results if r.ref is not None}
    reviews = [(s, refs[s.key]) for s in plan if s.key.endswith(":review")]
    target = JiraTarget.from_settings(settings)
    target.fields  # noqa: B018 - the site's issue types, read once, outside the counts
    site.jira_harness.reset()
    return target, reviews


def _calls(site: Sandbox) -> dict[str, int]:
    v = "3" if site.jira_flavor == "cloud" else "2"
    counts = site.jira_harness.requests()["by_route"]
    return {route: counts.get(route.format(v=v), 0) for route in (SEARCH, GET, PUT)}


def _retitled(spec: TicketSpec, suffix: str) -> TicketSpec:
    return spec.model_copy(update={"title": spec.title + suffix})


def test_updates_of_tickets_read_ahead_read_nothing_each(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """Cloud: three tickets read ahead in one search (through the index lag) are updated with
    one PUT each and no GET. A label a person added after the read stays, and ours are only
    added. Data Center reads nothing ahead (its search may show a ticket from before our
    last write): each update reads its ticket, as before."""
    settings = jira_settings(fresh_site)
    target, reviews = _reviews(fresh_site, settings, review_plan(fresh_site, 3))
    people = People(fresh_site, "jira")

    target.read_ahead([ref for _, ref in reviews])
    people.add_label(reviews[0][1], "discussed-in-cab")
    for spec, ref in reviews:
        target.update(ref, _retitled(spec, " (refreshed)"))

    cloud = fresh_site.jira_flavor == "cloud"
    writes = 3 + 1  # ours and the person's label
    assert _calls(fresh_site) == {SEARCH: 1 if cloud else 0, GET: 0 if cloud else 3, PUT: writes}
    assert "discussed-in-cab" in people.labels(reviews[0][1])
    assert reviews[0][0].key in people.labels(reviews[0][1])


def test_a_second_write_compares_with_our_first(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """A ticket written twice in one cycle (the pack, then the chart's description write) is
    compared the second time with what our first write set, not with what was read ahead:
    putting the title back is sent, and a third identical write sends nothing."""
    settings = jira_settings(fresh_site)
    target, ((spec, ref), *_) = _reviews(fresh_site, settings, review_plan(fresh_site, 1))
    people = People(fresh_site, "jira")

    target.read_ahead([ref])
    target.update(ref, _retitled(spec, " (refreshed)"))
    target.update(ref, spec)
    target.update(ref, spec)

    assert _calls(fresh_site)[PUT] == 2
    assert people._issue(ref, "summary")["summary"] == spec.title


def test_attachments_read_ahead_until_ours_change_them(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
) -> None:
    """The attachment list read ahead serves the first listing; after an upload (or a
    removal) of ours the next listing reads the ticket, and finds the new file. A new cycle
    (`forget_read_ahead`) reads again too."""
    settings = jira_settings(fresh_site)
    target, ((_, ref), *_) = _reviews(fresh_site, settings, review_plan(fresh_site, 1))
    name = "attainment-svc0000.png"
    first = target.attach(ref, name, b"\x89PNG one", "image/png")
    fresh_site.jira_harness.reset()

    target.read_ahead([ref])
    assert [a.id for a in target.attachments(ref, name)] == [first]
    second = target.attach(ref, name, b"\x89PNG two", "image/png")
    listed = target.attachments(ref, name)
    target.remove_attachment(ref, next(a for a in listed if a.id == first))
    after = target.attachments(ref, name)
    target.forget_read_ahead()
    again = target.attachments(ref, name)

    cloud = fresh_site.jira_flavor == "cloud"
    assert sorted(a.id for a in listed) == sorted([first, second])
    assert [a.id for a in after] == [a.id for a in again] == [second]
    assert _calls(fresh_site)[GET] == (3 if cloud else 4)
