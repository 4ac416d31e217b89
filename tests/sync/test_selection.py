"""Reading the LT's selection without HTTP: labels, notes, typos told once, the cycle flow with
the tickets winning over the state file (a fake target holding tickets by idempotency key)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from config import load_raci
from connectors import ConnectorError, TicketComment, TicketRef, TicketState
from review import (
    Cycle,
    Document,
    Scope,
    TicketKind,
    activity_ticket_key,
    cycle_for,
    review_ticket_key,
)
from review.document import document_text
from review.selection import Selectable, Unmatched
from sync.cycle_flow import CycleFlow, CycleState
from sync.selection import (
    NOTICE,
    TOKENS,
    choose,
    label_marks,
    note_marks,
    read_choice,
    remembered_selectable,
    tell_unmatched,
)
from sync.state import MirrorRecord, StateStore, open_store

NAMES = {"k-mail": "Email and Calendar", "k-pay": "Payroll", "k-crm": "CRM", "k-arc": "Archive"}
T0 = datetime(2026, 2, 1, 9, tzinfo=UTC)
CYCLE: Cycle = cycle_for(date(2026, 3, 1), "yearly", "01-15")
CYCLE_KEY = f"slm:{CYCLE.id}:cycle"
SELECT_KEY = f"slm:{CYCLE.id}:cycle:select_services"


def _note(text: str, minutes: int = 0, *, ours: bool = False) -> TicketComment:
    return TicketComment("ann@example.com", T0 + timedelta(minutes=minutes), text, ours)


def _state(
    key: str, *, labels: Sequence[str] = (), notes: Sequence[TicketComment] = ()
) -> TicketState:
    return TicketState(TicketRef(key, key), "To Do", False, tuple(labels), comments=tuple(notes))


SELECTABLE = Selectable(NAMES)


# ---- reading what people wrote ---------------------------------------------------------------
def test_labels_select_by_token_and_other_labels_are_ignored() -> None:
    """Tokens and the key form select; our own labels are not entries."""
    marks = label_marks(
        ["slm-sync", "slm:2026:cycle", "slm-select-payroll", "slm-select-k-crm"], "label on C-1"
    )
    assert choose(SELECTABLE, marks).selected == ("k-pay", "k-crm")


def test_a_note_selects_by_token_or_name_and_remove_takes_one_back() -> None:
    """One service per line, `select:` optional, bullets and quotes ignored, several tokens on
    a line; `remove:` later wins; prose is not an entry."""
    first = note_marks(
        "Our picks for this year:\n"
        "- slm-select-email-and-calendar\n"
        "* select: “Payroll”\n"
        "slm-select-crm, `slm-select-archive`.\n"
        "I think we should look at the numbers again next month.",
        "note on S-2",
    )
    later = note_marks("remove: payroll\nunselect: slm-select-archive", "note on S-2")
    choice = choose(SELECTABLE, [*first, *later])
    assert choice.selected == ("k-mail", "k-crm")
    assert choice.unmatched == ()


def test_a_typo_token_is_unmatched_with_the_nearest_match_and_ignored() -> None:
    """A token naming nothing selects nothing and names the nearest service's token."""
    choice = choose(
        SELECTABLE, note_marks("slm-select-emial-and-calendar\nslm-select-crm", "note on S-2")
    )
    assert choice.selected == ("k-crm",)
    (typo,) = choice.unmatched
    assert typo.written == "slm-select-emial-and-calendar" and typo.where == "note on S-2"
    assert typo.nearest[0] == "slm-select-email-and-calendar (Email and Calendar)"


def test_a_name_line_close_to_a_name_is_a_typo_and_far_prose_is_not() -> None:
    """An unprefixed line close to a service name is told as a typo; other prose is ignored;
    a prefixed line that matches nothing is always told, even with nothing close."""
    choice = choose(
        SELECTABLE,
        note_marks("Email and Calender\nLooks good to me\nselect: Quantum Teleporter", "n"),
    )
    assert [u.written for u in choice.unmatched] == ["Email and Calender", "Quantum Teleporter"]
    assert choice.unmatched[0].nearest == ("slm-select-email-and-calendar (Email and Calendar)",)
    assert choice.unmatched[1].nearest == ()


def test_a_typo_taken_back_is_no_longer_unmatched() -> None:
    """`remove:` with the typo's text clears it (a note cannot be deleted in ServiceNow)."""
    marks = note_marks("slm-select-payrol", "n") + note_marks("remove: slm-select-payrol", "n")
    assert choose(SELECTABLE, marks).unmatched == ()


def test_a_name_two_services_share_asks_for_a_token() -> None:
    selectable = Selectable({**NAMES, "k-pay2": "Payroll"})
    (entry,) = choose(selectable, note_marks("Payroll", "n")).unmatched
    assert entry.problem == "names 2 services; use a token"
    assert "slm-select-payroll" in entry.nearest[0]


def test_labels_count_first_then_notes_oldest_first_and_ours_are_skipped() -> None:
    """A later note's remove beats a label; notes on the cycle ticket and the sub-task merge by
    time; our own comment (quoting a typo and a suggestion) selects nothing."""
    cycle = _state(
        "C-1",
        labels=["slm-select-payroll", "slm-select-crm"],
        notes=[
            _note("remove: slm-select-crm", 5),
            _note(
                f"{NOTICE}; they are ignored:\n“slm-select-x” did you mean slm-select-archive", 9
            ),
            _note("slm-select-archive did you mean", 8, ours=True),
        ],
    )
    task = _state("S-2", notes=[_note("select: CRM", 1), _note("Email and Calendar", 7)])
    choice = read_choice(SELECTABLE, cycle, [task])
    assert sorted(choice.selected) == ["k-mail", "k-pay"]
    assert choice.unmatched == ()


def test_wiki_escaped_text_reads_as_written() -> None:
    """Jira Data Center wiki text escapes `-`: the entry still reads."""
    marks = note_marks("slm\\-select\\-payroll", "n")
    assert choose(SELECTABLE, marks).selected == ("k-pay",)


# ---- telling typos once ----------------------------------------------------------------------
@dataclass
class _Commenting:
    system: str = "fake"
    posted: list[str] = field(default_factory=list)
    failing: bool = False

    def comment(self, ref: TicketRef, body: Document) -> None:
        if self.failing:
            raise ConnectorError("503 from the target", system="fake", status=503)
        self.posted.append(document_text(body))


def _typos(*written: str) -> tuple[Unmatched, ...]:
    return choose(SELECTABLE, [m for w in written for m in note_marks(w, "n")]).unmatched


def test_a_typo_is_told_once_a_new_one_alone_and_a_failure_retried(tmp_path: object) -> None:
    """One comment names the typo and its nearest match; the next cycle says nothing; a new
    typo gets its own comment; a failed comment is tried again next cycle."""
    store = open_store(f"sqlite:///{tmp_path}/state.db")
    target = _Commenting()
    ref = TicketRef("C-1", "1")
    first = _typos("slm-select-payrol")
    tell_unmatched(target, store, CYCLE_KEY, ref, first)  # type: ignore[arg-type]
    tell_unmatched(target, store, CYCLE_KEY, ref, first)  # type: ignore[arg-type]
    assert len(target.posted) == 1
    assert "slm-select-payrol" in target.posted[0]
    assert "did you mean slm-select-payroll (Payroll)?" in target.posted[0]
    both = _typos("slm-select-payrol", "slm-select-crn")
    target.failing = True
    with capture_logs() as logs:
        tell_unmatched(target, store, CYCLE_KEY, ref, both)  # type: ignore[arg-type]
    assert [e["event"] for e in logs] == ["selection.notice_failed"]
    target.failing = False
    tell_unmatched(target, store, CYCLE_KEY, ref, both)  # type: ignore[arg-type]
    assert len(target.posted) == 2
    assert "slm-select-crn" in target.posted[1] and "slm-select-payrol" not in target.posted[1]
    store.close()


def test_a_lost_state_file_does_not_repeat_a_typo_our_comment_already_named(
    tmp_path: object,
) -> None:
    """No step recorded (new state file), but our comment on the cycle ticket quotes the typo:
    nothing is posted again."""
    store = open_store(f"sqlite:///{tmp_path}/state.db")
    target = _Commenting()
    typos = _typos("slm-select-payrol")
    ours = _note(f"{NOTICE}; ignored:\n“slm\\-select\\-payrol” (n) matches no service", ours=True)
    ref = TicketRef("C-1", "1")
    told = tell_unmatched(target, store, CYCLE_KEY, ref, typos, [ours])  # type: ignore[arg-type]
    assert told == [] and target.posted == []
    store.close()


# ---- tokens remembered -----------------------------------------------------------------------
def _mirror(store: StateStore, names: dict[str, str]) -> None:
    records = [
        MirrorRecord(stream="service", key=key, body={"key": key, "name": name})
        for key, name in names.items()
    ]
    store.store_page("servicenow", "service", records, None)


def test_tokens_are_remembered_so_a_rename_keeps_the_token(sqlite_store: StateStore) -> None:
    _mirror(sqlite_store, NAMES)
    assert remembered_selectable(sqlite_store, "fake").tokens["k-mail"] == (
        "slm-select-email-and-calendar"
    )
    _mirror(sqlite_store, {"k-mail": "Mail & Calendar"})
    again = remembered_selectable(sqlite_store, "fake")
    assert again.tokens["k-mail"] == "slm-select-email-and-calendar"
    assert again.resolve("slm-select-mail-calendar") == ("k-mail",)
    assert {r.key for r in sqlite_store.mirrored(TOKENS)} == set(NAMES)


# ---- the cycle flow against a fake target ----------------------------------------------------
@dataclass
class _Ticket:
    ref: TicketRef
    done: bool = False
    labels: list[str] = field(default_factory=list)
    notes: list[TicketComment] = field(default_factory=list)


@dataclass
class _Target:
    """Tickets by idempotency key, as the target would find them; comments are ours."""

    system: str = "fake"
    quarantine_seconds: float = 0.0
    tickets: dict[str, _Ticket] = field(default_factory=dict)
    finds: int = 0

    def add(self, key: str, *, done: bool = False) -> _Ticket:
        number = f"T-{len(self.tickets) + 1}"
        self.tickets[key] = _Ticket(TicketRef(number, number), done)
        return self.tickets[key]

    def find(self, keys: Sequence[str], *, recent: bool = False) -> dict[str, TicketRef]:
        self.finds += 1
        return {k: self.tickets[k].ref for k in keys if k in self.tickets}

    def state(self, refs: Sequence[TicketRef], *, comments: bool = False) -> dict[str, TicketState]:
        by_ref = {t.ref.key: t for t in self.tickets.values()}
        return {
            ref.key: TicketState(
                ref,
                "Done" if by_ref[ref.key].done else "To Do",
                by_ref[ref.key].done,
                tuple(by_ref[ref.key].labels),
                comments=tuple(by_ref[ref.key].notes) if comments else (),
            )
            for ref in refs
            if ref.key in by_ref
        }

    def comment(self, ref: TicketRef, body: Document) -> None:
        ticket = next(t for t in self.tickets.values() if t.ref == ref)
        ticket.notes.append(_note(document_text(body), 60, ours=True))


@pytest.fixture
def opened(sqlite_store: StateStore) -> tuple[_Target, StateStore]:
    """A cycle ticket and its sub-tasks in the target (the ledger learns them by lookup)."""
    _mirror(sqlite_store, NAMES)
    target = _Target()
    target.add(CYCLE_KEY)
    for activity in ("select_services", "lessons_learned", "update_policies"):
        target.add(activity_ticket_key(CYCLE.id, activity))
    return target, sqlite_store


def _flow(target: _Target, store: StateStore, configured: Sequence[str] = ()) -> CycleFlow:
    return CycleFlow(store, target, load_raci(), configured)  # type: ignore[arg-type]


def _open_review(target: _Target, store: StateStore, service: str) -> None:
    """The review ticket and its sub-tasks, created and recorded as the apply would."""
    review = review_ticket_key(CYCLE.id, service)
    keys: list[tuple[str, str | None, TicketKind]] = [(review, None, TicketKind.REVIEW)]
    keys += [
        (activity_ticket_key(CYCLE.id, a.id, service), review, TicketKind.ACTIVITY)
        for a in load_raci().in_scope(Scope.SERVICE)
    ]
    for key, parent, kind in keys:
        ref = target.add(key).ref
        store.record_intent("fake", key, parent_key=parent, kind=kind, spec_hash="h")
        store.record_created("fake", key, ticket_key=ref.key, ticket_id=ref.id, ticket_url=None,
                             applied_hash="h")  # fmt: skip


def test_the_lt_selects_freely_until_the_sub_task_is_done(
    opened: tuple[_Target, StateStore],
) -> None:
    """Before the sub-task is done the choice is shown (chosen) but opens nothing; done, the
    selection is what the tickets say at that sync."""
    target, store = opened
    target.tickets[CYCLE_KEY].labels += ["slm-select-payroll", "slm-select-crm"]
    phase = _flow(target, store).phase(CYCLE)
    assert (phase.state, phase.selection) == (CycleState.SELECTING, ())
    assert phase.selection_status is not None
    assert phase.selection_status.chosen == ("k-crm", "k-pay")
    finds = target.finds
    target.tickets[CYCLE_KEY].labels.remove("slm-select-crm")
    target.tickets[SELECT_KEY].done = True
    phase = _flow(target, store).phase(CYCLE)
    assert (phase.state, phase.selection) == (CycleState.REVIEWING, ("k-pay",))
    assert target.finds == finds, "known tickets and not-yet-due ones are not looked up"


def test_a_typo_never_stalls_the_cycle_and_is_told_once(
    opened: tuple[_Target, StateStore],
) -> None:
    """The typo is ignored; the reviews go on to closing; one comment on the cycle ticket."""
    target, store = opened
    target.tickets[CYCLE_KEY].labels += ["slm-select-payroll", "slm-select-payrol"]
    target.tickets[SELECT_KEY].done = True
    for _ in range(2):
        flow = _flow(target, store)
        phase = flow.phase(CYCLE)
        flow.tell_unmatched(CYCLE, phase)
    assert phase.selection == ("k-pay",)
    assert phase.selection_status is not None
    assert [u.written for u in phase.selection_status.unmatched] == ["slm-select-payrol"]
    told = [n.text for n in target.tickets[CYCLE_KEY].notes if "slm-select-payrol" in n.text]
    assert len(told) == 1 and "slm-select-payroll (Payroll)" in told[0]
    _open_review(target, store, "k-pay")
    for ticket in target.tickets.values():
        ticket.done = ticket is not target.tickets[CYCLE_KEY]
    phase = _flow(target, store).phase(CYCLE)
    assert phase.state is CycleState.CLOSED


def test_a_reviewed_service_stays_and_a_later_token_gets_its_review(
    opened: tuple[_Target, StateStore],
) -> None:
    """After the sub-task is done: a removed token keeps a service whose review exists (kept,
    said in the status); a token added later is selected at the next sync."""
    target, store = opened
    target.tickets[CYCLE_KEY].labels.append("slm-select-payroll")
    target.tickets[SELECT_KEY].done = True
    _flow(target, store).phase(CYCLE)
    _open_review(target, store, "k-pay")
    target.tickets[CYCLE_KEY].labels = ["slm-select-crm"]
    phase = _flow(target, store).phase(CYCLE)
    assert phase.selection == ("k-crm", "k-pay")
    assert phase.selection_status is not None and phase.selection_status.kept == ("k-pay",)


def test_a_lost_state_file_finds_the_same_selection_from_the_tickets(
    opened: tuple[_Target, StateStore], tmp_path: object
) -> None:
    """The state store is deleted after the reviews opened and a token was removed: a new one
    finds the cycle, the reviewed services (looked up by key) and the same selection."""
    target, store = opened
    target.tickets[CYCLE_KEY].labels += ["slm-select-payroll", "slm-select-crm"]
    target.tickets[SELECT_KEY].done = True
    first = _flow(target, store).phase(CYCLE)
    _open_review(target, store, "k-pay")
    _open_review(target, store, "k-crm")
    target.tickets[CYCLE_KEY].labels.remove("slm-select-crm")
    fresh = open_store(f"sqlite:///{tmp_path}/fresh/state.db")
    _mirror(fresh, NAMES)
    again = _flow(target, fresh).phase(CYCLE)
    assert again.state is CycleState.REVIEWING
    assert again.selection == first.selection == ("k-crm", "k-pay")
    ledger = fresh.ledger_rows("fake")
    assert ledger[review_ticket_key(CYCLE.id, "k-crm")].state == "created"
    assert ledger[activity_ticket_key(CYCLE.id, "participate_review", "k-crm")].parent_key == (
        review_ticket_key(CYCLE.id, "k-crm")
    )
    finds = target.finds
    _flow(target, fresh).phase(CYCLE)
    assert target.finds - finds <= 1, "adopted once; later cycles read the ledger"
    fresh.close()


def test_the_configured_selection_wins_and_an_unknown_key_is_only_listed(
    opened: tuple[_Target, StateStore],
) -> None:
    """review.selection decides (labels are not read); a key no service has is unmatched, in
    the cycle ticket only (no comment: it is fixed in the settings)."""
    target, store = opened
    target.tickets[CYCLE_KEY].labels.append("slm-select-crm")
    flow = _flow(target, store, ["k-pay", "k-nope"])
    phase = flow.phase(CYCLE)
    flow.tell_unmatched(CYCLE, phase)
    assert (phase.state, phase.selection) == (CycleState.REVIEWING, ("k-pay",))
    assert phase.selection_status is not None and phase.selection_status.configured
    assert [u.written for u in phase.selection_status.unmatched] == ["k-nope"]
    assert target.tickets[CYCLE_KEY].notes == []


def test_a_note_on_the_selection_sub_task_selects_as_in_servicenow(
    opened: tuple[_Target, StateStore],
) -> None:
    """No labels at all: work notes on the sub-task select and take back."""
    target, store = opened
    task = target.tickets[SELECT_KEY]
    task.notes += [_note("Payroll\nslm-select-crm", 1), _note("remove: CRM", 2)]
    task.done = True
    phase = _flow(target, store).phase(CYCLE)
    assert phase.selection == ("k-pay",)
    assert replace(phase, closable=()).state is CycleState.REVIEWING
