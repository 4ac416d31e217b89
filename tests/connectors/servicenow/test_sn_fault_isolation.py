"""Faults stay local on ServiceNow: a failed people lookup costs those people one cycle, and
an insert whose answer is lost is in doubt and never sent twice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from config import Settings
from connectors import AuthError, ConnectorError, OutcomeUnknown, Pacer, RetryPolicy
from connectors.errors import TransientError
from connectors.servicenow import Guard, ServiceNowTarget
from connectors.servicenow.client import TableResult
from connectors.servicenow.people import PeopleDirectory
from review import Document, Person, TicketKind, TicketSpec
from review import document as doc
from sandbox import Sandbox

ANN = Person(email="Ann@Example.com", name="Ann Example")
BOB = Person(email="bob@example.com", name="Bob Example")


@dataclass
class FlakyUsers:
    """A `TableClient` for sys_user lookups: fails with `error` while it is set."""

    error: ConnectorError | None = None
    queries: list[str] = field(default_factory=list)

    def list(self, table: str, *, query: str, fields: Sequence[str], limit: int) -> TableResult:
        self.queries.append(query)
        if self.error is not None:
            raise self.error
        rows = [{"sys_id": "a" * 32, "email": "ann@example.com"}]
        return TableResult([r for r in rows if r["email"] in query])


def _directory(users: FlakyUsers, now: list[float]) -> PeopleDirectory:
    guard = Guard(Pacer(1e6, burst=10), RetryPolicy(max_attempts=3), concurrency=1)
    settings = Settings(servicenow={"instance": "acme", "username": "u", "password": "p"})
    return PeopleDirectory(
        users, guard, settings.servicenow, retry_failed_after=600.0, clock=lambda: now[0]
    )  # type: ignore[arg-type]


def test_a_failed_batch_lookup_costs_those_people_this_cycle_only() -> None:
    """After the retries, Ann and Bob have no sys_id (logged once, by name), are not
    remembered as "no user", are not looked up again this cycle, and are after
    `start_cycle()`."""
    users = FlakyUsers(TransientError("servicenow answered 503", status=503))
    now = [0.0]
    people = _directory(users, now)
    with capture_logs() as logs:
        people.prepare([ANN, BOB])
        assert [people.sys_id(ANN), people.sys_id(BOB), people.watcher(BOB)] == [
            "",
            "",
            BOB.email,
        ]
    assert len(users.queries) == 3  # one batch, three attempts, nothing more for sys_id()
    failed = [e for e in logs if e["event"] == "servicenow.person_lookup_failed"]
    assert [e["people"] for e in failed] == [[ANN.name, BOB.name]]
    assert not [e for e in logs if e["event"] == "servicenow.person_not_found"]
    assert people.lookup_failed == ("ann@example.com", "bob@example.com")
    assert people.any_failed([None, ANN]) and not people.any_failed([None])
    users.error = None
    people.start_cycle()
    assert people.sys_id(ANN) == "a" * 32 and people.lookup_failed == ()
    assert not people.any_failed([ANN, BOB])


def test_a_failed_lookup_is_tried_again_at_the_latest_after_retry_failed_after() -> None:
    """Without a cycle start (a daemon whose sync layer does not call it), a failed lookup is
    remembered for `retry_failed_after` seconds, then tried again."""
    users = FlakyUsers(TransientError("cut short", status=200))
    now = [0.0]
    people = _directory(users, now)
    assert people.sys_id(ANN) == ""
    users.error = None
    now[0] = 599.0
    assert people.sys_id(ANN) == "" and len(users.queries) == 3
    now[0] = 600.0
    assert people.sys_id(ANN) == "a" * 32


def test_a_missing_role_on_sys_user_still_stops_the_run() -> None:
    """A 403 is no one person's problem: the AuthError reaches the caller."""
    people = _directory(FlakyUsers(AuthError("servicenow answered 403", status=403)), [0.0])
    with pytest.raises(AuthError):
        people.prepare([ANN])


def _review(sandbox: Sandbox) -> TicketSpec:
    owner = sandbox.estate.person(sandbox.estate.services[0].owner or "")
    return TicketSpec(
        key="slm:2026:svc:review",
        kind=TicketKind.REVIEW,
        title="Review: service",
        body=Document(blocks=(doc.paragraph("pack"),)),
        assignee=Person(email=owner.email, name=owner.name),
        informed=(Person(email=owner.email, name=owner.name),),
    )


def test_tickets_are_written_when_the_people_lookup_fails(
    sandbox_small: Sandbox, make_target: Callable[..., ServiceNowTarget]
) -> None:
    """Every sys_user lookup answers a cut body: the ticket is still created, unassigned and
    watched by email; the next cycle finds the owner."""
    sandbox_small.knobs.update({"faults": "malformed=1,only=GET /api/now/table/sys_user"})
    target = make_target(sandbox_small)
    spec = _review(sandbox_small)
    [result] = target.create([spec], {})
    assert result.ref is not None and result.error is None
    row = sandbox_small.servicenow.store.find("vtb_task", result.ref.id)
    assert row is not None and row["assigned_to"] == ""
    assert spec.assignee is not None and row["watch_list"] == spec.assignee.email
    sandbox_small.knobs.update({"faults": None})
    target.people.start_cycle()
    assert target.people.sys_id(spec.assignee) == sandbox_small.estate.services[0].owner


@pytest.mark.parametrize(("fault", "applied"), [("malformed=1", 1), ("5xx=1", 0)])
def test_an_insert_whose_answer_is_lost_is_in_doubt_and_sent_once(
    sandbox_small: Sandbox,
    make_target: Callable[..., ServiceNowTarget],
    fault: str,
    applied: int,
) -> None:
    """A cut 201 (the record exists) or a proxy 5xx (it may): OutcomeUnknown after exactly
    one POST."""
    target = make_target(sandbox_small)
    sandbox_small.servicenow_harness.reset()
    sandbox_small.knobs.update({"faults": f"{fault},only=POST /api/now/table/vtb_task"})
    payload = {"short_description": "in doubt", "correlation_id": "slm:2026:doubt"}
    with pytest.raises(OutcomeUnknown) as caught:
        target.guard.call(
            lambda: target.client.create("vtb_task", payload, fields=("sys_id",)),
            what="new vtb_task record slm:2026:doubt",
            repeatable=False,
        )
    assert "correlation_id" in str(caught.value)
    routes = sandbox_small.servicenow_harness.requests()["by_route"]
    assert routes["POST /api/now/table/<table>"] == 1
    assert len(sandbox_small.servicenow.created()["records"].get("vtb_task", [])) == applied
