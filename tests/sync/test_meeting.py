"""Reading the meeting back from the target: date, attendance, decisions and improvements come
from the tickets' states, comments are read in bulk and only for the reviews that need them,
and a failed read keeps the review out of this cycle's updates instead of emptying it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from config import ConfigError, load_raci, load_settings
from connectors import (
    ConnectorError,
    LinkedTicket,
    TicketComment,
    TicketRef,
    TicketState,
    TransientError,
)
from review import (
    Component,
    Person,
    RoleHolders,
    Service,
    TicketSpec,
    build_plan,
    cycle_for,
)
from review.document import document_text
from sync.engine import _change_document, _meeting_changes
from sync.meeting import CycleRecord, MeetingReader, author_name, read_cycle

MATRIX = load_raci()
CYCLE = cycle_for(date(2026, 3, 1), "yearly", "01-15")
WHEN = datetime(2026, 3, 20, 10, tzinfo=UTC)


def _p(name: str) -> Person:
    return Person(email=f"{name.lower().replace(' ', '.')}@example.com", name=name)


PO, OWNER, CI = _p("Bob Black"), _p("Sam Owner"), _p("Cora Ci")
HOLDERS = RoleHolders(slm_process_owner=PO)
PAYROLL = Service(
    key="payroll", name="Payroll", owner=OWNER,
    components=(Component(key="c1", name="payroll-db", owner=CI),),
)  # fmt: skip
EMAIL = Service(key="email", name="E-mail", owner=OWNER)
SERVICES = [EMAIL, PAYROLL]
TICKETS = build_plan(CYCLE, MATRIX, HOLDERS, SERVICES, [s.key for s in SERVICES]).tickets
REFS = {
    t.key: TicketRef(key=f"SLM-{n}", id=str(1000 + n), url=f"https://jira.example/browse/SLM-{n}")
    for n, t in enumerate(TICKETS, start=1)
}


def _spec(service: str, activity: str, assignee: Person | None = None) -> TicketSpec:
    return next(
        t
        for t in TICKETS
        if t.service_key == service
        and t.activity_id == activity
        and (assignee is None or t.assignee == assignee)
    )


def _review(service: str) -> TicketSpec:
    return next(t for t in TICKETS if t.service_key == service and t.kind.value == "review")


class Target:
    """The target as the reader sees it: states by ticket key, linked tickets, every call kept."""

    system = "jira"

    def __init__(self) -> None:
        self.states: dict[str, TicketState] = {
            ref.key: TicketState(ref=ref, status="To Do", done=False) for ref in REFS.values()
        }
        self.links: dict[str, tuple[LinkedTicket, ...]] = {}
        self.calls: list[tuple[str, tuple[str, ...], bool]] = []
        self.fail: ConnectorError | None = None

    def set(self, spec: TicketSpec, **fields: object) -> None:
        ref = REFS[spec.key]
        current = self.states[ref.key]
        self.states[ref.key] = TicketState(
            ref=ref,
            status="Done" if fields.get("done") else current.status,
            done=bool(fields.get("done", current.done)),
            due=fields.get("due", current.due),  # type: ignore[arg-type]
            resolved=fields.get("resolved", current.resolved),  # type: ignore[arg-type]
            comments=fields.get("comments", current.comments),  # type: ignore[arg-type]
        )

    def state(self, refs: Sequence[TicketRef], *, comments: bool = False) -> dict[str, TicketState]:
        self.calls.append(("state", tuple(r.key for r in refs), comments))
        if self.fail is not None:
            raise self.fail
        found = {r.key: self.states[r.key] for r in refs}
        if not comments:  # as the real targets: comments only when asked for
            found = {k: TicketState(s.ref, s.status, s.done, due=s.due, resolved=s.resolved)
                     for k, s in found.items()}  # fmt: skip
        return found

    def linked(self, refs: Sequence[TicketRef]) -> dict[str, tuple[LinkedTicket, ...]]:
        self.calls.append(("linked", tuple(r.key for r in refs), False))
        return {r.key: self.links.get(r.key, ()) for r in refs}


def _read(target: Target, services: Sequence[Service], *, dates: bool = False) -> CycleRecord:
    return read_cycle(
        target,  # type: ignore[arg-type]
        TICKETS,
        REFS,
        services,
        matrix=MATRIX,
        holders=HOLDERS,
        dates=dates,
    )


def test_the_meeting_date_is_the_due_date_of_the_done_schedule_sub_task() -> None:
    target = Target()
    schedule = _spec("payroll", "schedule_review")
    target.set(schedule, due=date(2026, 4, 2))
    assert _read(target, [PAYROLL]).meetings["payroll"].scheduled is None, "not done yet"
    target.set(schedule, done=True)
    assert _read(target, [PAYROLL]).meetings["payroll"].scheduled == date(2026, 4, 2)


def test_each_participant_closing_their_sub_task_is_their_attendance() -> None:
    target = Target()
    target.set(_spec("payroll", "participate_review", OWNER), done=True)
    meeting = _read(target, [PAYROLL]).meetings["payroll"]
    assert [(a.person, a.attended) for a in meeting.attendance] == [
        (PO, False),
        (OWNER, True),
        (CI, False),
    ]


def test_decisions_come_from_people_s_comments_on_the_review_and_its_sub_tasks() -> None:
    """`Decision:` comments by people count, with the author's name; slm-sync's own notes and
    other comments do not."""
    target = Target()
    target.set(
        _review("payroll"),
        comments=(
            TicketComment("sam.owner@example.com", WHEN, "Decision: keep the P1 target"),
            TicketComment("slm-sync", WHEN, "Decision: not ours to read", ours=True),
            TicketComment("Bob Black", WHEN, "Looks good"),
        ),
    )
    target.set(
        _spec("payroll", "propose_improvements"),
        comments=(
            TicketComment("Pat Guest", WHEN + timedelta(hours=1), "decision (policy): 6 months"),
        ),
    )
    decisions = _read(target, [PAYROLL]).meetings["payroll"].decisions
    review_key = REFS[_review("payroll").key].key
    sub_task = REFS[_spec("payroll", "propose_improvements").key]
    assert [(d.author, d.text, d.policy, d.ticket) for d in decisions] == [
        ("Sam Owner", "keep the P1 target", False, review_key),
        ("Pat Guest", "6 months", True, sub_task.key),
    ]
    assert decisions[1].url == sub_task.url and decisions[0].service_key == "payroll"


def test_tickets_linked_to_the_review_are_its_improvements_done_or_open() -> None:
    target = Target()
    review = REFS[_review("payroll").key].key
    target.links[review] = (
        LinkedTicket("SLM-90", "Add an OLA", done=False, url="https://jira.example/browse/SLM-90"),
        LinkedTicket("SLM-89", "Fix alerts", done=True),
    )
    found = _read(target, [PAYROLL]).meetings["payroll"].improvements
    assert [(m.title, m.open) for m in found] == [
        ("SLM-89 Fix alerts", False),
        ("SLM-90 Add an OLA", True),
    ]


def test_comments_are_read_in_one_bulk_call_only_for_the_reviews_asked_for() -> None:
    target = Target()
    _read(target, [PAYROLL])
    with_comments = [c for c in target.calls if c[0] == "state" and c[2]]
    assert len(with_comments) == 1
    payroll = {REFS[t.key].key for t in TICKETS if t.service_key == "payroll"}
    assert set(with_comments[0][1]) == payroll
    assert [c[0] for c in target.calls] == ["state", "linked"]


def test_nothing_to_read_makes_no_call() -> None:
    target = Target()
    record = _read(target, [])
    assert record.meetings == {} and target.calls == []


def test_a_review_not_created_yet_has_its_invitees_and_nothing_recorded() -> None:
    """The first sync writes the review with the meeting section the next syncs keep (so a
    second sync changes nothing): invitees, not scheduled, nobody attended, nothing decided."""
    target = Target()
    record = read_cycle(
        target,  # type: ignore[arg-type]
        TICKETS,
        {},
        [PAYROLL],
        matrix=MATRIX,
        holders=HOLDERS,
    )
    meeting = record.meetings["payroll"]
    assert target.calls == []
    assert [i.person for i in meeting.invitees] == [PO, OWNER, CI]
    assert meeting.scheduled is None and not meeting.decisions and not meeting.improvements
    assert [(a.person, a.attended) for a in meeting.attendance] == [
        (PO, False),
        (OWNER, False),
        (CI, False),
    ]


def test_closing_reads_every_sub_task_s_dates_without_comments_for_the_cycle_ones() -> None:
    target = Target()
    prepare = _spec("payroll", "prepare_artifacts")
    target.set(prepare, done=True, resolved=datetime(2026, 4, 9, 12, tzinfo=UTC))
    record = _read(target, SERVICES, dates=True)
    comment_reads = [c for c in target.calls if c[0] == "state" and c[2]]
    plain_reads = [c for c in target.calls if c[0] == "state" and not c[2]]
    assert len(comment_reads) == 1 and len(plain_reads) == 1
    cycle_subtasks = {REFS[t.key].key for t in TICKETS if t.parent_key == "slm:2026:cycle"}
    assert set(plain_reads[0][1]) == cycle_subtasks
    late = {t.title: t.days_late for t in record.timings if t.days_late}
    assert prepare.due is not None
    assert late == {prepare.title: (date(2026, 4, 9) - prepare.due).days}
    assert len(record.timings) == len([t for t in TICKETS if t.kind.value == "activity"])


@pytest.mark.parametrize("dates", [False, True])
def test_a_failed_read_leaves_the_reviews_unread_not_empty(dates: bool) -> None:
    target = Target()
    target.fail = TransientError("jira answered 503")
    record = _read(target, [PAYROLL], dates=dates)
    assert record.meetings == {} and record.unread == {"payroll"}
    assert record.dates_unread is dates


def test_the_reader_plans_the_selected_services_and_reads_only_those_to_read() -> None:
    target = Target()
    target.set(_spec("email", "schedule_review"), done=True, due=date(2026, 5, 5))
    reader = MeetingReader(
        target,  # type: ignore[arg-type]
        MATRIX,
        HOLDERS,
        CYCLE,
        REFS,
        {"email"},
    )
    meetings = reader.meetings(SERVICES)
    assert list(meetings) == ["email"] and meetings["email"].scheduled == date(2026, 5, 5)
    assert reader.record.meetings is not None and reader.record.timings == []


def test_an_author_is_named_as_the_invitee_with_that_email_or_name() -> None:
    assert author_name("SAM.OWNER@example.com", [OWNER]) == "Sam Owner"
    assert author_name("sam owner", [OWNER]) == "Sam Owner"
    assert author_name("5b10a2844c20165700ede21g", [OWNER]) == "5b10a2844c20165700ede21g"


def test_sub_tasks_the_ledger_lost_are_adopted_before_the_read() -> None:
    """A lost state file: the review is known, a further R person's Participate sub-task is
    not; it is found by key (adopted) and its done state counts as attendance."""
    target = Target()
    part = _spec("payroll", "participate_review", OWNER)
    target.set(part, done=True)
    known = {k: r for k, r in REFS.items() if k != part.key}
    asked: list[list[str]] = []

    def adopt(specs: Sequence[TicketSpec]) -> dict[str, TicketRef]:
        asked.append([s.key for s in specs])
        return {s.key: REFS[s.key] for s in specs}

    record = read_cycle(
        target,  # type: ignore[arg-type]
        TICKETS,
        known,
        [PAYROLL],
        matrix=MATRIX,
        holders=HOLDERS,
        adopt=adopt,
    )
    assert asked == [[part.key]]
    attended = [a.person for a in record.meetings["payroll"].attendance if a.attended]
    assert attended == [OWNER]


def test_a_failed_lookup_of_lost_sub_tasks_leaves_the_review_unread() -> None:
    target = Target()
    part = _spec("payroll", "participate_review", OWNER)

    def adopt(specs: Sequence[TicketSpec]) -> dict[str, TicketRef]:
        raise TransientError("jira answered 503")

    record = read_cycle(
        target,  # type: ignore[arg-type]
        TICKETS,
        {k: r for k, r in REFS.items() if k != part.key},
        [PAYROLL, EMAIL],
        matrix=MATRIX,
        holders=HOLDERS,
        adopt=adopt,
    )
    assert record.unread == {"payroll"} and list(record.meetings) == ["email"]


def test_a_policy_url_without_scheme_is_refused_naming_file_key_and_line(tmp_path: Path) -> None:
    """review.policy_url is the link "Update process policies" shows: an http(s) URL; a blank
    value means not configured."""
    config = tmp_path / "slm-sync.yaml"
    config.write_text("review:\n  policy_url: intranet/slm-policy\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    message = str(refused.value)
    assert (
        "review.policy_url" in message
        and "slm-sync.yaml" in message
        and "slm-sync.yaml:2:" in message
    )
    assert "https://intranet/slm-policy" in message
    config.write_text("review:\n  policy_url: ''\n")
    assert load_settings(config).review.policy_url is None


def test_the_change_note_names_the_meeting_s_news() -> None:
    """The comment slm-sync adds when it refreshes a review says what changed in the meeting,
    not just "new data"."""
    before = {"scheduled": None, "attended": [], "decisions": [], "improvements": []}
    now = {
        "scheduled": "2026-04-02",
        "attended": ["Sam Owner"],
        "decisions": ["SLM-2 2026-03-20T10:00:00+00:00 keep the target"],
        "improvements": ["SLM-90 Add an OLA"],
    }
    assert _meeting_changes(before, now) == [
        "Meeting scheduled for 2026-04-02",
        "Attended: Sam Owner",
        "1 decision recorded",
        "Improvement ticket linked: SLM-90 Add an OLA",
    ]
    assert _meeting_changes(now, now) == []
    assert _meeting_changes(now, {}) == [], "a meeting not read says nothing"
    note = _change_document({}, {}, _meeting_changes(before, now))
    assert note is not None and "Meeting scheduled for 2026-04-02" in document_text(note)


def test_done_sub_tasks_keep_the_due_date_people_set_also_on_frozen_reviews() -> None:
    """The meeting date people set on the done Schedule sub-task is what the next update
    writes back: read with the meeting (comments) for a review being read, and without
    comments for one whose meeting is no longer read (frozen)."""
    target = Target()
    for service in ("payroll", "email"):
        target.set(_spec(service, "schedule_review"), done=True, due=date(2026, 4, 2))
    record = read_cycle(
        target,  # type: ignore[arg-type]
        TICKETS,
        REFS,
        [PAYROLL],
        matrix=MATRIX,
        holders=HOLDERS,
        dated=[EMAIL],
    )
    assert record.people_due == {
        _spec("payroll", "schedule_review").key: date(2026, 4, 2),
        _spec("email", "schedule_review").key: date(2026, 4, 2),
    }
    plain = [c for c in target.calls if c[0] == "state" and not c[2]]
    email = {REFS[t.key].key for t in TICKETS if t.parent_key == _review("email").key}
    assert [set(c[1]) for c in plain] == [email] and list(record.meetings) == ["payroll"]
