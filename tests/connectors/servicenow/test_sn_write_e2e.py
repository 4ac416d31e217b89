"""Writing review tasks to the ServiceNow stand-in: create, find, update, work note, attach."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from connectors import TicketRef
from connectors.servicenow import ServiceNowTarget
from review import Document, Person, SourceRef, TicketKind, TicketSpec
from review import document as doc
from sandbox import Sandbox

CYCLE = "slm:2026:cycle"


def _body(text: str) -> Document:
    return Document(blocks=(doc.heading(1, "Review"), doc.paragraph(text)))


def _specs(sandbox: Sandbox) -> list[TicketSpec]:
    estate = sandbox.estate
    owner = estate.person(estate.services[0].owner or "")
    other = estate.people[5]
    service = estate.services[0].sys_id
    return [
        TicketSpec(
            key=CYCLE, kind=TicketKind.CYCLE, title="SLM review cycle 2026", body=_body("cycle")
        ),
        TicketSpec(
            key=f"slm:2026:{service}:review",
            parent_key=CYCLE,
            kind=TicketKind.REVIEW,
            title="Review: service",
            body=_body("pack"),
            assignee=Person(email=owner.email, name=owner.name),
            accountable=Person(
                name=other.name,
                source=SourceRef(system="servicenow", table="sys_user", id=other.sys_id),
            ),
            informed=(Person(email="no.account@example.org", name="Outside Person"),),
            due=date(2026, 3, 31),
        ),
    ]


def _requests(sandbox: Sandbox) -> dict[str, int]:
    by_route: dict[str, int] = sandbox.servicenow_harness.requests()["by_route"]
    return by_route


def test_create_writes_each_ticket_in_one_request_with_key_and_people(
    sandbox_small: Sandbox, make_target: Callable[..., ServiceNowTarget]
) -> None:
    """Creating a cycle task and a review task under it takes one POST each; the review task
    carries its key in correlation_id, its parent, assignee (found by email), watchers (by
    sys_id, or by email for someone without an account) and due date."""
    target = make_target(sandbox_small)
    specs = _specs(sandbox_small)
    sandbox_small.servicenow_harness.reset()
    results = target.create(specs, {})
    assert [r.error for r in results] == [None, None]
    assert _requests(sandbox_small).get("POST /api/now/table/<table>") == 2
    cycle, review = (r.ref for r in results)
    assert cycle is not None and review is not None
    row = sandbox_small.servicenow.store.find("vtb_task", review.id)
    assert row is not None
    estate = sandbox_small.estate
    assert row["correlation_id"] == specs[1].key and row["correlation_display"] == "slm-sync"
    assert row["parent"] == cycle.id
    assert row["assigned_to"] == estate.services[0].owner
    assert row["watch_list"].split(",") == [estate.people[5].sys_id, "no.account@example.org"]
    assert row["due_date"] == "2026-03-31 23:59:59"
    assert "Review\n======" in row["description"] and "Accountable:" in row["description"]


def test_find_returns_tickets_by_idempotency_key(
    sandbox_small: Sandbox, make_target: Callable[..., ServiceNowTarget]
) -> None:
    """find() names the tickets that already carry the keys and leaves out unknown keys."""
    target = make_target(sandbox_small)
    created = target.create(_specs(sandbox_small)[:1], {})[0].ref
    found = target.find([CYCLE, "slm:2026:nothing:review"])
    assert found == {CYCLE: created}
    assert created is not None and created.key.startswith("VTB")


def test_update_sends_only_the_changed_fields(
    sandbox_small: Sandbox, make_target: Callable[..., ServiceNowTarget]
) -> None:
    """update() PATCHes only fields that differ; an unchanged spec sends no write at all."""
    target = make_target(sandbox_small)
    spec = _specs(sandbox_small)[0]
    ref = target.create([spec], {})[0].ref
    assert ref is not None
    sandbox_small.servicenow_harness.reset()
    target.update(ref, spec)
    assert "PATCH /api/now/table/<table>/<sys_id>" not in _requests(sandbox_small)
    changed = spec.model_copy(update={"title": "SLM review cycle 2026 (renamed)"})
    target.update(ref, changed)
    assert _requests(sandbox_small)["PATCH /api/now/table/<table>/<sys_id>"] == 1
    row: Any = sandbox_small.servicenow.store.find("vtb_task", ref.id)
    assert row["short_description"] == "SLM review cycle 2026 (renamed)"


def test_updates_of_records_read_ahead_read_nothing_each(
    sandbox_small: Sandbox, make_target: Callable[..., ServiceNowTarget]
) -> None:
    """Records read ahead (one sys_idIN query) are updated without a GET each: an unchanged
    spec sends nothing, a changed one its field; a second write compares with the first, so
    putting the title back is sent. After `forget_read_ahead` an update reads its record."""
    target = make_target(sandbox_small)
    spec = _specs(sandbox_small)[0]
    ref = target.create([spec], {})[0].ref
    assert ref is not None
    sandbox_small.servicenow_harness.reset()
    renamed = spec.model_copy(update={"title": "SLM review cycle 2026 (renamed)"})
    target.read_ahead([ref])
    target.update(ref, spec)
    target.update(ref, renamed)
    target.update(ref, spec)
    calls = _requests(sandbox_small)
    assert calls["GET /api/now/table/<table>"] == 1  # every record found: no empty page after
    assert "GET /api/now/table/<table>/<sys_id>" not in calls
    assert calls["PATCH /api/now/table/<table>/<sys_id>"] == 2
    row: Any = sandbox_small.servicenow.store.find("vtb_task", ref.id)
    assert row["short_description"] == spec.title
    target.forget_read_ahead()
    target.update(ref, spec)
    assert _requests(sandbox_small)["GET /api/now/table/<table>/<sys_id>"] == 1


def test_work_note_and_attachment_land_on_the_ticket(
    sandbox_small: Sandbox, make_target: Callable[..., ServiceNowTarget]
) -> None:
    """comment() adds a work note with the rendered text; attach() uploads the chart file."""
    target = make_target(sandbox_small)
    ref = target.create(_specs(sandbox_small)[:1], {})[0].ref
    assert ref is not None
    target.comment(ref, _body("Targets refreshed"))
    target.attach(ref, "attainment.png", b"\x89PNG fake", "image/png")
    created = sandbox_small.servicenow.created()
    notes = created["journal"][ref.id]
    assert notes[-1]["element"] == "work_notes" and "Targets refreshed" in notes[-1]["value"]
    files = [a for a in created["attachments"] if a["table_sys_id"] == ref.id]
    assert files and files[0]["file_name"] == "attainment.png"


def test_state_reports_done_when_the_task_is_closed(
    sandbox_small: Sandbox, make_target: Callable[..., ServiceNowTarget]
) -> None:
    """state() reads status back; a closed task (state 3) is done."""
    target = make_target(sandbox_small)
    ref = target.create(_specs(sandbox_small)[:1], {})[0].ref
    assert ref is not None
    assert target.state([ref])[ref.key].done is False
    sandbox_small.servicenow.update("vtb_task", ref.id, state="3", active="false")
    state = target.state([ref])[ref.key]
    assert state.done is True and state.status == "3" and CYCLE in state.labels


def test_missing_parent_is_reported_not_created(
    sandbox_small: Sandbox, make_target: Callable[..., ServiceNowTarget]
) -> None:
    """A child whose parent has no ticket is not created without it: its result names why."""
    target = make_target(sandbox_small)
    result = target.create(_specs(sandbox_small)[1:], {})[0]
    assert result.ref is None and result.error is not None and CYCLE in result.error


def test_parent_given_by_the_caller_is_used(
    sandbox_small: Sandbox, make_target: Callable[..., ServiceNowTarget]
) -> None:
    """A parent created in an earlier run is taken from `parents`."""
    target = make_target(sandbox_small)
    cycle = target.create(_specs(sandbox_small)[:1], {})[0].ref
    assert cycle is not None
    child = target.create(_specs(sandbox_small)[1:], {CYCLE: TicketRef(cycle.key, cycle.id)})[0]
    assert child.ref is not None
    row: Any = sandbox_small.servicenow.store.find("vtb_task", child.ref.id)
    assert row["parent"] == cycle.id
