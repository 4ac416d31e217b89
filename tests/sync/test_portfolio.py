"""The portfolio page's review progress: the ledger's tickets, read back in one bulk call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from connectors import ConnectorError, TicketRef, TicketState
from review import Document, Person, TicketKind, TicketSpec
from review.portfolio import Progress
from sync.portfolio import _reviews
from sync.state import StateStore

TODAY = date(2026, 3, 1)
REVIEW = "slm:2026:svc:review"


class _Target:
    """Answers `state` from a table of done flags, or fails like an unreachable target."""

    system = "jira"

    def __init__(self, done: dict[str, bool] | None) -> None:
        self.done = done
        self.calls: list[list[str]] = []

    def state(self, refs: Sequence[TicketRef], *, comments: bool = False) -> dict[str, TicketState]:
        self.calls.append([r.key for r in refs])
        if self.done is None:
            raise ConnectorError("connection refused", system="jira")
        return {r.key: TicketState(ref=r, status="x", done=self.done[r.key]) for r in refs}


def _spec(key: str, kind: TicketKind, due: date | None = None) -> TicketSpec:
    return TicketSpec(
        key=key, parent_key=None if kind is TicketKind.REVIEW else REVIEW, kind=kind,
        title=key.rsplit(":", 1)[-1], body=Document(blocks=()), due=due, service_key="svc",
        assignee=Person(name="Ana", email="ana@example.com"),
    )  # fmt: skip


def _ledger(store: StateStore, key: str, ticket: str) -> None:
    store.record_intent("jira", key, parent_key=None, kind="x", spec_hash="h")
    url = f"https://jira.example/browse/{ticket}"
    store.record_created(
        "jira", key, ticket_key=ticket, ticket_id="1", ticket_url=url, applied_hash="h"
    )


SPECS = (
    _spec(REVIEW, TicketKind.REVIEW),
    _spec("slm:2026:svc:schedule", TicketKind.ACTIVITY, date(2026, 2, 1)),
    _spec("slm:2026:svc:prepare", TicketKind.ACTIVITY, date(2026, 2, 1)),
    _spec("slm:2026:svc:participate", TicketKind.ACTIVITY, date(2026, 4, 1)),
    _spec("slm:2026:svc:propose", TicketKind.ACTIVITY),
)


def test_progress_from_one_bulk_read(sqlite_store: StateStore) -> None:
    """Done, late (open past due), open; a sub-task the ledger lacks is "not created yet"; the
    created tickets are read in a single call."""
    for number, spec in enumerate(SPECS[:4], 1):
        _ledger(sqlite_store, spec.key, f"SLM-{number}")
    target = _Target({"SLM-1": False, "SLM-2": True, "SLM-3": False, "SLM-4": False})
    review = _reviews(SPECS, ["svc"], sqlite_store, target, TODAY)["svc"]  # type: ignore[arg-type]
    assert target.calls == [["SLM-1", "SLM-2", "SLM-3", "SLM-4"]]
    assert review.ticket.status is Progress.OPEN and review.ticket.ticket == "SLM-1"
    statuses = [a.status for a in review.activities]
    assert statuses == [Progress.DONE, Progress.LATE, Progress.OPEN, Progress.PENDING]
    assert review.activities[0].url == "https://jira.example/browse/SLM-2"
    assert review.activities[0].assignee == "Ana"


def test_an_unreachable_target_leaves_the_page_saying_not_read(sqlite_store: StateStore) -> None:
    """A failed read is no failure of the page: created tickets show "not read"."""
    _ledger(sqlite_store, REVIEW, "SLM-1")
    review = _reviews(SPECS, ["svc"], sqlite_store, _Target(None), TODAY)["svc"]  # type: ignore[arg-type]
    assert review.ticket.status is Progress.UNKNOWN
    assert {a.status for a in review.activities} == {Progress.PENDING}


def test_unselected_services_have_no_progress(sqlite_store: StateStore) -> None:
    """Only the selected services' reviews are read."""
    target = _Target({})
    assert _reviews(SPECS, ["other"], sqlite_store, target, TODAY) == {}  # type: ignore[arg-type]
    assert target.calls == []
