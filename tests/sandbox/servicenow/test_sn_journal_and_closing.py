"""Work notes as journal entries in sys_journal_field, written as the acting person; a task's
closed_at and active following its state; gs.getUserID(); dot-walked fields."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

from sandbox import Sandbox


def _task(sandbox: Sandbox, auth: tuple[str, str]) -> dict[str, Any]:
    url = f"{sandbox.servicenow_url}/api/now/table/vtb_task"
    response = requests.post(url, json={"short_description": "Review"}, auth=auth, timeout=5)
    assert response.status_code == 201
    return dict(response.json()["result"])


def _journal(sandbox: Sandbox, query: str, **params: str) -> list[dict[str, Any]]:
    url = f"{sandbox.servicenow_url}/api/now/table/sys_journal_field"
    params = {"sysparm_query": query, **params}
    response = requests.get(url, params=params, auth=("integration.user", "x"), timeout=5)
    assert response.status_code == 200
    rows: list[dict[str, Any]] = response.json()["result"]
    return rows


def test_work_notes_are_journal_rows_written_as_the_acting_person(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """A person (Basic auth with their e-mail) writes a work note and a comment: each is a
    sys_journal_field row created by their user_name, readable with an encoded query in
    creation order; the task's fields read "" by value. The table has no sys_updated_on."""
    sandbox = sandbox_factory()
    person = sandbox.estate.people[2]
    task = _task(sandbox, ("integration.user", "x"))
    url = f"{sandbox.servicenow_url}/api/now/table/vtb_task/{task['sys_id']}"
    sandbox.servicenow.clock = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    body = {"work_notes": "Decision: keep"}
    patched = requests.patch(url, json=body, auth=(person.email, "any"), timeout=5).json()
    assert patched["result"]["work_notes"] == ""
    sandbox.servicenow.clock = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
    requests.patch(url, json={"comments": "thanks"}, auth=("integration.user", "x"), timeout=5)

    query = f"element_idIN{task['sys_id']}^elementINwork_notes,comments^ORDERBYsys_created_on"
    rows = _journal(sandbox, query)
    assert [(r["element"], r["value"], r["sys_created_by"]) for r in rows] == [
        ("work_notes", "Decision: keep", person.user_name),
        ("comments", "thanks", "integration.user"),
    ]
    assert rows[0]["name"] == "vtb_task" and rows[0]["sys_created_on"] == "2026-03-02 09:00:00"
    fields = "sys_id,sys_updated_on,value"
    assert set(_journal(sandbox, f"element_id={task['sys_id']}", sysparm_fields=fields)[0]) == {
        "sys_id",
        "value",
    }


def test_closing_stamps_closed_at_and_reopening_clears_it(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """Moving a task to Closed Complete sets closed_at and active false; back to Work in
    Progress clears closed_at and sets active true."""
    sandbox = sandbox_factory()
    task = _task(sandbox, ("integration.user", "x"))
    url = f"{sandbox.servicenow_url}/api/now/table/vtb_task/{task['sys_id']}"
    sandbox.servicenow.clock = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    closed = requests.patch(url, json={"state": "3"}, auth=("a", "b"), timeout=5).json()["result"]
    assert (closed["active"], closed["closed_at"]) == ("false", "2026-03-02 10:00:00")
    reopened = requests.patch(url, json={"state": "2"}, auth=("a", "b"), timeout=5).json()
    assert (reopened["result"]["active"], reopened["result"]["closed_at"]) == ("true", "")


def test_get_user_id_names_the_acting_user_and_dot_walks_read_the_assignee(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """`javascript:gs.getUserID()` in a query is the acting user's sys_user sys_id; a task's
    `assigned_to.email` comes back as a dot-walked key."""
    sandbox = sandbox_factory()
    person = sandbox.estate.people[1]
    users = f"{sandbox.servicenow_url}/api/now/table/sys_user"
    params = {"sysparm_query": "sys_id=javascript:gs.getUserID()", "sysparm_fields": "user_name"}
    found = requests.get(users, params=params, auth=(person.user_name, "x"), timeout=5).json()
    assert found["result"] == [{"user_name": person.user_name}]
    task = _task(sandbox, (person.email, "x"))
    assert task["sys_created_by"] == person.user_name
    url = f"{sandbox.servicenow_url}/api/now/table/vtb_task/{task['sys_id']}"
    requests.patch(url, json={"assigned_to": person.sys_id}, auth=("a", "b"), timeout=5)
    row = requests.get(
        url, params={"sysparm_fields": "assigned_to.email"}, auth=("a", "b"), timeout=5
    ).json()
    assert row["result"] == {"assigned_to.email": person.email}
