"""Partial bulk failures, search index lag, unresolved people, transitions and attachments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from config import Settings
from connectors import TicketRef
from connectors.jira import JiraTarget
from review import Person, TicketSpec
from review.document import Document, paragraph
from sandbox import Sandbox


def test_partial_bulk_failure_creates_the_rest_and_names_the_field(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
) -> None:
    """One element Jira refuses (an override naming a user that does not exist) fails alone,
    with the field and the config key in the error; the other tickets of the call exist."""
    specs = review_plan(fresh_site, 5)
    bad = specs[2]
    assert bad.assignee is not None and bad.assignee.email
    override = {"jira_account_id": "no-such-account", "jira_name": "no-such-user"}
    settings = jira_settings(fresh_site, people={bad.assignee.email: override})
    top = [s for s in specs if s.parent_key is None]
    results = JiraTarget.from_settings(settings).create(top, {})
    failed = [r for r in results if r.ref is None]
    owner_of = {s.key for s in top if s.assignee == bad.assignee}
    assert {r.spec_key for r in failed} == owner_of
    assert all("assignee" in (r.error or "") and "review.people" in (r.error or "") for r in failed)
    assert len(created(fresh_site)) == len(top) - len(failed)


def test_index_lag_right_after_create_causes_no_duplicate(
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    sandbox_lagging: Sandbox,
    created: Callable[[Sandbox], list[dict[str, Any]]],
) -> None:
    """Right after a create, labels are not searchable yet; a new process looking the keys up
    looks again after the index lag (the keys are `recent`: intents without an outcome) and
    finds them instead of creating duplicates."""
    site = sandbox_lagging
    clock = {"now": 1000.0}
    site.jira.site.clock = lambda: clock["now"]
    specs = review_plan(site, 3)
    first = JiraTarget.from_settings(jira_settings(site))
    first.create(specs, {})
    assert first.find([s.key for s in specs]).keys() == {s.key for s in specs}  # remembered

    def wait(seconds: float) -> None:
        clock["now"] += seconds

    second = JiraTarget(first.api, jira_settings(site, index_lag_seconds=5.0), sleep=wait)
    found = second.find([s.key for s in specs], recent=True)
    missing = [s for s in specs if s.key not in found]
    second.create(missing, found)
    assert missing == [] and len(created(site)) == len(specs)
    assert clock["now"] > 1000.0  # the first lookup missed: the index had not caught up


def test_unresolved_person_goes_to_fallback_and_is_reported(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    people_of: Callable[[Sandbox], list[Person]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
) -> None:
    """A responsible person without a Jira account does not fail the run: the ticket goes to
    the fallback assignee, names them in the body, and their email is listed as unresolved."""
    fallback = people_of(fresh_site)[0]
    ghost = next(p for p in fresh_site.estate.people if not p.in_jira)
    target = JiraTarget.from_settings(jira_settings(fresh_site, fallback_assignee=fallback.email))
    spec = TicketSpec(
        key="slm:2026:ghost:review",
        kind="review",
        title="Review with an unknown owner",
        body=Document(blocks=(paragraph("Body."),)),
        assignee=Person(email=ghost.email, name=ghost.name),
    )
    [result] = target.create([spec], {})
    assert result.ref is not None
    [ticket] = created(fresh_site)
    assert ticket["assignee"]["email"] == fallback.email
    assert ghost.name in str(ticket["description"])
    assert target.unresolved_people == (ghost.email.lower(),)


def test_update_sends_only_changed_fields_and_keeps_added_labels(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    calls: Callable[[Sandbox], dict[str, int]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
) -> None:
    """A changed title is the only field sent; a label people added (the LT's selection) stays."""
    [cycle] = review_plan(fresh_site, 0)
    target = JiraTarget.from_settings(jira_settings(fresh_site))
    [result] = target.create([cycle], {})
    assert result.ref is not None
    api_v = "3" if fresh_site.jira_flavor == "cloud" else "2"
    requests.put(
        f"{fresh_site.jira_url}/rest/api/{api_v}/issue/{result.ref.key}",
        json={"update": {"labels": [{"add": "slm-select-svc0001"}]}},
        auth=("slm-sync@example.com", "token"),
        timeout=5,
    )
    target.update(result.ref, cycle.model_copy(update={"title": "Cycle 2026 (renamed)"}))
    [ticket] = created(fresh_site)
    assert ticket["summary"] == "Cycle 2026 (renamed)"
    assert "slm-select-svc0001" in ticket["labels"]
    state = target.state([result.ref])[result.ref.key]
    assert "slm-select-svc0001" in state.labels and not state.done


def test_comment_attachment_and_transition(
    fresh_site: Sandbox,
    jira_settings: Callable[..., Settings],
    review_plan: Callable[..., list[TicketSpec]],
    created: Callable[[Sandbox], list[dict[str, Any]]],
) -> None:
    """The chart PNG is attached, a refresh comment added, and 'Done' closes the ticket."""
    [cycle] = review_plan(fresh_site, 0)
    target = JiraTarget.from_settings(jira_settings(fresh_site, add_watchers=True))
    [result] = target.create([cycle], {})
    ref: TicketRef = result.ref  # type: ignore[assignment]
    target.attach(ref, "attainment.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")
    target.comment(ref, Document(blocks=(paragraph("Figures refreshed."),)))
    assert target.close(ref)
    [ticket] = created(fresh_site)
    assert ticket["attachments"] == [{"filename": "attainment.png", "size": 72}]
    assert "Figures refreshed." in str(ticket["comments"])
    assert ticket["status"] == "Done" and target.state([ref])[ref.key].done
