"""The idempotency protocol against an in-memory target: nothing duplicated, nothing lost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connectors import (
    CreateResult,
    LinkedTicket,
    RateLimited,
    TicketRef,
    TicketState,
    TransientError,
)
from review import Document, Person, TicketKind, TicketSpec
from review.document import paragraph
from sync.reconcile import Action, Reconciler
from sync.state import StateStore


@dataclass
class FakeTarget:
    """A target that keeps tickets in a dict and can fail creates on demand."""

    system: str = "fake"
    quarantine_seconds: float = 60.0
    tickets: dict[str, TicketSpec] = field(default_factory=dict)
    refs: dict[str, TicketRef] = field(default_factory=dict)
    fail_keys: set[str] = field(default_factory=set)
    raise_on_create: Exception | None = None
    lands_late: bool = False  # the create is applied, but only after the caller gave up
    late: list[TicketSpec] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    comments: list[tuple[str, Document]] = field(default_factory=list)

    def find(self, keys: Sequence[str], *, recent: bool = False) -> dict[str, TicketRef]:
        self.calls.append("find")
        return {k: self.refs[k] for k in keys if k in self.refs}

    def create(
        self, specs: Sequence[TicketSpec], parents: Mapping[str, TicketRef]
    ) -> list[CreateResult]:
        self.calls.append("create")
        if self.lands_late:
            self.late.extend(specs)
            raise TransientError("ReadTimeout for bulk create", system=self.system)
        if self.raise_on_create is not None:
            raise self.raise_on_create
        results = []
        for spec in specs:
            if spec.key in self.fail_keys:
                results.append(CreateResult(spec.key, None, "assignee: user does not exist"))
                continue
            assert spec.parent_key is None or spec.parent_key in parents
            ref = TicketRef(key=f"T-{len(self.refs) + 1}", id=str(len(self.refs) + 1))
            self.refs[spec.key] = ref
            self.tickets[spec.key] = spec
            results.append(CreateResult(spec.key, ref))
        return results

    def land(self) -> None:
        """The creates that timed out are applied now (the server finished them)."""
        for spec in self.late:
            self.refs[spec.key] = TicketRef(key=f"T-{len(self.refs) + 1}", id=str(len(self.refs)))
            self.tickets[spec.key] = spec
        self.late.clear()

    def update(self, ref: TicketRef, spec: TicketSpec) -> None:
        self.calls.append("update")
        self.tickets[spec.key] = spec

    def comment(self, ref: TicketRef, body: Document) -> None:
        self.comments.append((ref.key, body))

    def attach(self, ref: TicketRef, filename: str, content: bytes, content_type: str) -> None:
        raise NotImplementedError

    def state(self, refs: Sequence[TicketRef], *, comments: bool = False) -> dict[str, TicketState]:
        return {}

    def unresolved(self, people: Sequence[Person]) -> tuple[Person, ...]:
        return ()

    def linked(self, refs: Sequence[TicketRef]) -> dict[str, tuple[LinkedTicket, ...]]:
        return {}


def _specs(title_suffix: str = "") -> list[TicketSpec]:
    body = Document(blocks=(paragraph("pack"),))
    review = TicketSpec(
        key="slm:2026:svc:review", kind=TicketKind.REVIEW, title=f"Review{title_suffix}", body=body
    )
    subtasks = [
        TicketSpec(
            key=f"slm:2026:svc:{a}",
            parent_key=review.key,
            kind=TicketKind.ACTIVITY,
            title=a,
            body=body,
        )
        for a in ("schedule_review", "participate_review")
    ]
    return [*subtasks, review]  # children first on purpose: apply must order them


def test_first_run_creates_parents_then_children_second_run_changes_nothing(
    sqlite_store: StateStore,
) -> None:
    """Run 1 creates 3 tickets (parent first); run 2 creates and updates nothing."""
    target = FakeTarget()
    first = Reconciler(target, sqlite_store).apply(_specs())
    assert first.as_counts() == {
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
        "in_doubt": 0,
    }
    second = Reconciler(target, sqlite_store).apply(_specs())
    assert second.as_counts() == {
        "created": 0,
        "updated": 0,
        "unchanged": 3,
        "failed": 0,
        "in_doubt": 0,
    }
    assert len(target.tickets) == 3


def test_changed_spec_updates_only_that_ticket_and_comments(sqlite_store: StateStore) -> None:
    """A changed review pack updates the review ticket alone, with a change note as comment."""
    target = FakeTarget()
    Reconciler(target, sqlite_store).apply(_specs())
    note = Document(blocks=(paragraph("2 new breaches"),))
    reconciler = Reconciler(target, sqlite_store, change_note=lambda spec, row: note)
    summary = reconciler.apply(_specs(" (refreshed)"))
    assert summary.as_counts() == {
        "created": 0,
        "updated": 1,
        "unchanged": 2,
        "failed": 0,
        "in_doubt": 0,
    }
    assert target.tickets["slm:2026:svc:review"].title == "Review (refreshed)"
    assert target.comments == [("T-1", note)]


def test_lost_ledger_finds_tickets_by_key_and_creates_nothing(sqlite_store: StateStore) -> None:
    """With the ledger gone, the next run adopts existing tickets through lookup by key."""
    target = FakeTarget()
    Reconciler(target, sqlite_store).apply(_specs())
    sqlite_store.forget_ledger("fake")
    summary = Reconciler(target, sqlite_store).apply(_specs())
    assert summary.count(Action.CREATE) == 0
    assert len(target.tickets) == 3
    assert set(sqlite_store.ledger_rows("fake")) == {s.key for s in _specs()}


def test_create_never_received_fails_and_next_run_looks_up_then_creates(
    sqlite_store: StateStore,
) -> None:
    """A create the target never acted on (429 after the retry budget) is a plain failure: the
    next run looks the keys up first, then creates each once."""
    target = FakeTarget(raise_on_create=RateLimited("429", system="fake", retry_after=1))
    summary = Reconciler(target, sqlite_store).apply(_specs())
    assert summary.as_counts()["failed"] == 3 and summary.as_counts()["in_doubt"] == 0
    assert [o.action for o in summary.failed] == [Action.CREATE, Action.WAIT, Action.WAIT]
    assert sqlite_store.ledger_rows("fake")["slm:2026:svc:review"].state == "failed"
    target.raise_on_create = None
    target.calls.clear()
    again = Reconciler(target, sqlite_store).apply(_specs())
    assert again.as_counts()["created"] == 3
    assert target.calls[0] == "find"


class Clock:
    """A settable clock for the quarantine."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_create_in_doubt_is_not_sent_again_until_the_quarantine_has_passed(
    sqlite_store: StateStore,
) -> None:
    """A create that timed out is in doubt: runs inside the quarantine look it up but never send
    it again; after the quarantine a lookup that still finds nothing lets it be created once."""
    target = FakeTarget(raise_on_create=TransientError("ReadTimeout", system="fake"))
    clock = Clock()
    first = Reconciler(target, sqlite_store, clock=clock).apply(_specs())
    assert first.as_counts()["in_doubt"] == 1 and first.as_counts()["failed"] == 3
    assert "may have reached fake" in (first.failed[0].error or "")
    assert sqlite_store.ledger_rows("fake")["slm:2026:svc:review"].state == "doubt"
    target.raise_on_create = None
    target.calls.clear()
    clock.now += timedelta(seconds=59)
    inside = Reconciler(target, sqlite_store, clock=clock).apply(_specs())
    assert "create" not in target.calls and target.calls[0] == "find", "looked up, not sent"
    assert inside.as_counts()["in_doubt"] == 1
    assert "not sent again before" in (inside.failed[0].error or "")
    clock.now += timedelta(seconds=2)
    after = Reconciler(target, sqlite_store, clock=clock).apply(_specs())
    assert after.as_counts()["created"] == 3
    assert len(target.tickets) == 3


def test_create_that_lands_after_the_timeout_is_adopted_not_duplicated(
    sqlite_store: StateStore,
) -> None:
    """The server finishes a create after we gave up: the next run finds and adopts it; nothing
    is created twice even though the first lookups came back empty."""
    target = FakeTarget(lands_late=True)
    clock = Clock()
    Reconciler(target, sqlite_store, clock=clock).apply(_specs())
    target.lands_late = False
    Reconciler(target, sqlite_store, clock=clock).apply(_specs())  # not landed yet: waits
    assert target.calls.count("create") == 1
    target.land()
    landed = Reconciler(target, sqlite_store, clock=clock).apply(_specs())
    assert landed.count(Action.UNCHANGED) + landed.count(Action.ADOPT) == 1
    assert landed.count(Action.CREATE) == 2  # the sub-tasks, once their parent exists
    assert len(target.tickets) == 3 and target.calls.count("create") == 2


def test_process_killed_while_sending_leaves_the_keys_in_doubt(sqlite_store: StateStore) -> None:
    """An intent marked `sending` with no outcome (a kill mid-request) is in doubt; an intent
    never sent (a kill before the request) is created at once after a lookup."""
    target = FakeTarget()
    specs = _specs()
    review = specs[-1]
    sqlite_store.record_intent("fake", review.key, parent_key=None, kind=review.kind, spec_hash="x")
    sqlite_store.record_sending("fake", [review.key])
    summary = Reconciler(target, sqlite_store).apply(specs)
    assert summary.count(Action.IN_DOUBT, failed=True) == 1 and "create" not in target.calls
    sqlite_store.forget_ledger("fake")
    sqlite_store.record_intent("fake", review.key, parent_key=None, kind=review.kind, spec_hash="x")
    summary = Reconciler(target, sqlite_store).apply(specs)
    assert summary.count(Action.CREATE) == 3


def test_one_failing_ticket_does_not_stop_the_others(sqlite_store: StateStore) -> None:
    """A rejected sub-task is reported with its reason; its siblings are created."""
    target = FakeTarget(fail_keys={"slm:2026:svc:schedule_review"})
    summary = Reconciler(target, sqlite_store).apply(_specs())
    assert summary.as_counts() == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "failed": 1,
        "in_doubt": 0,
    }
    assert summary.failed[0].error == "assignee: user does not exist"


def test_crash_after_create_before_record_adopts_without_duplicate(
    sqlite_store: StateStore,
) -> None:
    """The ticket exists but the ledger only has the intent: lookup adopts it, no second create."""
    target = FakeTarget()
    specs = _specs()
    Reconciler(target, sqlite_store).apply(specs)
    sqlite_store.forget_ledger("fake")
    for spec in specs:
        sqlite_store.record_intent(
            "fake", spec.key, parent_key=spec.parent_key, kind=spec.kind, spec_hash="x"
        )
    summary = Reconciler(target, sqlite_store).apply(specs)
    assert summary.count(Action.CREATE) == 0
    assert len(target.tickets) == 3


def test_dry_run_writes_nothing(sqlite_store: StateStore) -> None:
    """A dry run reports the creates it would make and touches neither target nor ledger."""
    target = FakeTarget()
    summary = Reconciler(target, sqlite_store).apply(_specs(), dry_run=True)
    assert summary.count(Action.CREATE) == 3
    assert "create" not in target.calls
    assert sqlite_store.ledger_rows("fake") == {}
