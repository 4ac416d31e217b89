"""The review meetings and the cycle's dates, read back from the target every cycle.

The tickets are the record of the process: the meeting date (the due date of the done
"Schedule service review" sub-task), attendance (each responsible person's "Participate in
service review" sub-task done), decisions (people's `Decision:` comments on the review ticket
and its sub-tasks; slm-sync's own notes are never read as decisions) and improvement actions
(tickets linked to the review) are read from the target, never from the state store: all this
needs is the ticket refs of the cycle's tickets, which the ledger finds by key when the state
file was lost.

Comments are the costly part of a read, so they are read only where they still matter, in bulk
(`state(refs, comments=True)` over many tickets at once):
- while reviewing: the review tickets (and their sub-tasks) of the selected services whose pack
  is not frozen yet, including the cycle its "Participate" sub-task is found done, when the
  pack gets its last version and our `FROZEN_NOTE` comment; a frozen pack keeps what it showed
  when the review happened, and the note on its ticket says so after a lost state file;
- while closing: every review of the cycle (the closing activities sum up all the decisions),
  plus the cycle's own activity sub-tasks without comments (their dates, for lateness).
A review whose tickets could not be read is `unread`: its ticket keeps what it shows this cycle
rather than lose its meeting; the next cycle reads it again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import structlog

from connectors import (
    ConnectorError,
    FatalError,
    LinkedTicket,
    TargetConnector,
    TicketRef,
    TicketState,
)
from review import (
    Cycle,
    Material,
    MaterialKind,
    Person,
    RaciMatrix,
    RoleHolders,
    Service,
    TicketKind,
    TicketSpec,
    build_plan,
    identity,
)
from review.cycle_summary import ActivityTiming
from review.meeting import (
    FROZEN_NOTE,
    PARTICIPATE_ACTIVITY,
    SCHEDULE_ACTIVITY,
    activity_name,
    decision_from,
    invitees,
)
from review.model import Attendance, Decision, Invitee, Meeting

log = structlog.get_logger("slm_sync.meeting")
# Finds tickets by their idempotency keys and records them in the ledger (a lost state file).
Adopt = Callable[[Sequence[TicketSpec]], Mapping[str, TicketRef]]


@dataclass
class CycleRecord:
    """What the target shows of this cycle's reviews: each review's meeting (by service key),
    the activity sub-tasks' dates (read while closing), and what could not be read."""

    meetings: dict[str, Meeting] = field(default_factory=dict)
    timings: list[ActivityTiming] = field(default_factory=list)
    unread: set[str] = field(default_factory=set)  # service keys
    dates_unread: bool = False
    # Done sub-tasks of the reviews read: the due date their ticket shows (people's, such as the
    # meeting date on "Schedule service review"), by idempotency key; updates keep it.
    people_due: dict[str, date | None] = field(default_factory=dict)
    # Reviews (service keys) whose ticket carries our FROZEN_NOTE: their pack had its last
    # version already, whatever the state file says.
    frozen_noted: set[str] = field(default_factory=set)


@dataclass
class PlanCache:
    """The plan the last meetings were read against (`build_plan` is pure): reused while the
    cycle and the services are the same, as in an idle cycle, instead of building every
    sub-task's body again."""

    key: tuple[Cycle, tuple[Service, ...]] | None = None
    tickets: tuple[TicketSpec, ...] = ()

    def tickets_for(
        self, cycle: Cycle, matrix: RaciMatrix, holders: RoleHolders, services: Sequence[Service]
    ) -> tuple[TicketSpec, ...]:
        key = (cycle, tuple(services))
        if self.key != key:
            keys = [s.key for s in services]
            self.tickets = tuple(build_plan(cycle, matrix, holders, services, keys).tickets)
            self.key = key
        return self.tickets


@dataclass
class MeetingReader:
    """Reads the meetings of `read` (service keys) and, with `dates`, every activity's dates;
    with `due_dates`, the done sub-tasks' due dates of the other selected reviews (no comments).

    `refs`: the cycle's tickets by idempotency key. `freezing`: services whose pack is given its
    last version this cycle (their meeting says `frozen`). Called by the review build with the
    selected services (`meetings`), after which `record` holds everything read."""

    target: TargetConnector
    matrix: RaciMatrix
    holders: RoleHolders
    cycle: Cycle
    refs: Mapping[str, TicketRef]
    read: Collection[str]
    dates: bool = False
    due_dates: bool = False
    adopt: Adopt | None = None
    freezing: Collection[str] = ()
    record: CycleRecord = field(default_factory=CycleRecord)
    plans: PlanCache = field(default_factory=PlanCache)

    def meetings(self, services: Sequence[Service]) -> dict[str, Meeting]:
        """Each readable selected service's meeting, as its tickets show it now."""
        tickets = self.plans.tickets_for(self.cycle, self.matrix, self.holders, services)
        self.record = read_cycle(
            self.target,
            tickets,
            self.refs,
            [s for s in services if s.key in self.read],
            matrix=self.matrix,
            holders=self.holders,
            dates=self.dates,
            adopt=self.adopt,
            dated=[s for s in services if s.key not in self.read] if self.due_dates else (),
        )
        return {
            key: meeting.model_copy(update={"frozen": True}) if key in self.freezing else meeting
            for key, meeting in self.record.meetings.items()
        }


def read_cycle(
    target: TargetConnector,
    tickets: Sequence[TicketSpec],
    refs: Mapping[str, TicketRef],
    services: Sequence[Service],
    *,
    matrix: RaciMatrix,
    holders: RoleHolders,
    dates: bool = False,
    adopt: Adopt | None = None,
    dated: Sequence[Service] = (),
) -> CycleRecord:
    """The meetings of `services` (their review tickets and sub-tasks, with comments, and the
    tickets linked to the reviews) and, with `dates`, the dates of every activity sub-task.

    `adopt` finds the sub-tasks of existing reviews that `refs` lacks (a lost state file: each
    further R person's Participate sub-task has its own key) and records them in the ledger.
    `dated`: reviews whose meeting is not read (frozen, or the cycle closed) but whose done
    sub-tasks' due dates are (no comments), so updates keep the dates people set."""
    record = CycleRecord()
    units = _review_units(tickets, services)
    others = _review_units(tickets, dated)
    existing = {key: unit for key, unit in {**units, **others}.items() if unit[0].key in refs}
    refs = _with_adopted(existing, refs, adopt, record)
    readable = {key: unit for key, unit in existing.items() if key not in record.unread}
    states, links = _read_reviews(
        target, {k: u for k, u in readable.items() if k in units}, refs, record
    )
    states.update(_read_due_dates(target, {k: u for k, u in readable.items() if k in others},
                                  refs, record))  # fmt: skip
    for service in services:  # a review not created yet has an empty record: nothing to read
        if service.key in units and service.key not in record.unread:
            review, children = units[service.key]
            record.meetings[service.key] = meeting_of(
                service, review, children, refs, states, links, matrix=matrix, holders=holders
            )
            shown = states.get(refs[review.key].key) if review.key in refs else None
            if shown is not None and any(c.ours and FROZEN_NOTE in c.text for c in shown.comments):
                record.frozen_noted.add(service.key)
    for key, (_review, children) in {**units, **others}.items():
        if key not in record.unread:
            record.people_due.update(_people_due(children, refs, states))
    if dates:
        record.timings = _timings(target, tickets, refs, states, record)
    return record


def meeting_of(
    service: Service,
    review: TicketSpec,
    children: Sequence[TicketSpec],
    refs: Mapping[str, TicketRef],
    states: Mapping[str, TicketState],
    links: Mapping[str, Sequence[LinkedTicket]],
    *,
    matrix: RaciMatrix,
    holders: RoleHolders,
) -> Meeting:
    """One review's meeting from its tickets' states (by ticket key) and linked tickets."""
    invited = invitees(matrix, service, holders)

    def state(spec: TicketSpec) -> TicketState | None:
        ref = refs.get(spec.key)
        return states.get(ref.key) if ref is not None else None

    scheduled = next(
        (found.due for c in children
         if c.activity_id == SCHEDULE_ACTIVITY and (found := state(c)) is not None and found.done),
        None,
    )  # fmt: skip
    attendance = tuple(
        Attendance(person=c.assignee, attended=bool((found := state(c)) and found.done))
        for c in children
        if c.activity_id == PARTICIPATE_ACTIVITY and c.assignee is not None
    )
    decisions = [
        decision
        for spec in (review, *children)
        for decision in _decisions(spec, refs.get(spec.key), state(spec), invited)
    ]
    review_ref = refs.get(review.key)
    linked = links.get(review_ref.key, ()) if review_ref is not None else ()
    return Meeting(
        scheduled=scheduled,
        schedule_activity=activity_name(matrix, SCHEDULE_ACTIVITY, "Schedule service review"),
        participate_activity=activity_name(
            matrix, PARTICIPATE_ACTIVITY, "Participate in service review"
        ),
        invitees=invited,
        attendance=attendance,
        decisions=tuple(sorted(decisions, key=lambda d: (d.recorded, d.ticket, d.text))),
        improvements=_improvements(service, linked),
    )


def _with_adopted(
    units: Mapping[str, tuple[TicketSpec, list[TicketSpec]]],
    refs: Mapping[str, TicketRef],
    adopt: Adopt | None,
    record: CycleRecord,
) -> Mapping[str, TicketRef]:
    """`refs` plus the sub-tasks of `units` found by key; a failed lookup leaves those reviews
    unread (their attendance would be wrong)."""
    missing = [c for _review, children in units.values() for c in children if c.key not in refs]
    if not missing or adopt is None:
        return refs
    try:
        found = adopt(missing)
    except FatalError:
        raise
    except ConnectorError as error:
        keys = {c.key for c in missing}
        record.unread.update(k for k, (_r, kids) in units.items() if keys & {c.key for c in kids})
        log.warning("meeting.lookup_failed", tickets=len(missing), error=str(error))
        return refs
    return {**refs, **found}


def _people_due(
    children: Sequence[TicketSpec],
    refs: Mapping[str, TicketRef],
    states: Mapping[str, TicketState],
) -> dict[str, date | None]:
    """The due date each done sub-task shows: what people settled (the meeting date) stays."""
    kept: dict[str, date | None] = {}
    for child in children:
        ref = refs.get(child.key)
        found = states.get(ref.key) if ref is not None else None
        if found is not None and found.done:
            kept[child.key] = found.due
    return kept


def _review_units(
    tickets: Sequence[TicketSpec], services: Sequence[Service]
) -> dict[str, tuple[TicketSpec, list[TicketSpec]]]:
    """Per service to read: its review spec and its sub-task specs."""
    wanted = {s.key for s in services}
    children: dict[str, list[TicketSpec]] = {}
    for spec in tickets:  # grouped once: each review scanning every ticket was quadratic
        if spec.parent_key is not None:
            children.setdefault(spec.parent_key, []).append(spec)
    units: dict[str, tuple[TicketSpec, list[TicketSpec]]] = {}
    for spec in tickets:
        if spec.kind is TicketKind.REVIEW and spec.service_key in wanted:
            units[spec.service_key] = (spec, children.get(spec.key, []))
    return units


def _read_reviews(
    target: TargetConnector,
    units: Mapping[str, tuple[TicketSpec, list[TicketSpec]]],
    refs: Mapping[str, TicketRef],
    record: CycleRecord,
) -> tuple[dict[str, TicketState], dict[str, tuple[LinkedTicket, ...]]]:
    """The review tickets and their sub-tasks with comments, and the reviews' linked tickets:
    two bulk reads. A failed read leaves every review unread (logged), never half-read."""
    wanted = [
        refs[spec.key]
        for review, children in units.values()
        for spec in (review, *children)
        if spec.key in refs
    ]
    if not wanted:
        return {}, {}
    try:
        states = target.state(wanted, comments=True)
        links = target.linked([refs[review.key] for review, _children in units.values()])
    except FatalError:
        raise
    except ConnectorError as error:
        record.unread.update(units)
        log.warning("meeting.read_failed", reviews=len(units), error=str(error))
        return {}, {}
    log.info("meeting.read", reviews=len(units), tickets=len(wanted))
    return states, links


def _read_due_dates(
    target: TargetConnector,
    units: Mapping[str, tuple[TicketSpec, list[TicketSpec]]],
    refs: Mapping[str, TicketRef],
    record: CycleRecord,
) -> dict[str, TicketState]:
    """The sub-tasks of reviews whose meeting is not read, without comments (their dates)."""
    wanted = [
        refs[c.key] for _review, children in units.values() for c in children if c.key in refs
    ]
    if not wanted:
        return {}
    try:
        return target.state(wanted)
    except FatalError:
        raise
    except ConnectorError as error:
        record.unread.update(units)
        log.warning("meeting.dates_read_failed", tickets=len(wanted), error=str(error))
        return {}


def _timings(
    target: TargetConnector,
    tickets: Sequence[TicketSpec],
    refs: Mapping[str, TicketRef],
    states: dict[str, TicketState],
    record: CycleRecord,
) -> list[ActivityTiming]:
    """Planned due date and done date of every activity sub-task of the cycle that exists."""
    activities = [t for t in tickets if t.kind is TicketKind.ACTIVITY and t.key in refs]
    missing = [refs[t.key] for t in activities if refs[t.key].key not in states]
    if missing:
        try:
            states = {**states, **target.state(missing)}
        except FatalError:
            raise
        except ConnectorError as error:
            record.dates_unread = True
            log.warning("meeting.dates_read_failed", tickets=len(missing), error=str(error))
            return []
    timings = []
    for spec in activities:
        found = states.get(refs[spec.key].key)
        if found is not None:
            due = spec.due or found.due  # the plan's date: a moved due date hides no lateness
            timings.append(ActivityTiming(title=spec.title, due=due, resolved=found.resolved))
    return timings


def _decisions(
    spec: TicketSpec,
    ref: TicketRef | None,
    state: TicketState | None,
    invited: Sequence[Invitee],
) -> list[Decision]:
    """People's `Decision:` comments on one ticket (slm-sync's own notes are skipped)."""
    if ref is None or state is None:
        return []
    found = (
        decision_from(
            comment.text,
            author=author_name(comment.author, [i.person for i in invited]),
            recorded=comment.created,
            ticket=ref.key,
            url=ref.url,
            service_key=spec.service_key,
        )
        for comment in state.comments
        if not comment.ours
    )
    return [decision for decision in found if decision is not None]


def author_name(author: str, people: Sequence[Person]) -> str:
    """A comment's author as people know them: the name of the invitee with that e-mail (or
    name), else what the target showed."""
    wanted = author.strip().lower()
    for person in people:
        if wanted in (identity(person), person.name.strip().lower()):
            return person.name
    return author


def _improvements(service: Service, linked: Sequence[LinkedTicket]) -> tuple[Material, ...]:
    """Tickets linked to the review: its improvement actions, open or done."""
    return tuple(
        Material(
            key=f"improvement:{ticket.key}",
            kind=MaterialKind.IMPROVEMENT,
            title=f"{ticket.key} {ticket.title}",
            number=ticket.key,
            service_key=service.key,
            url=ticket.url,
            open=not ticket.done,
        )
        for ticket in sorted(linked, key=lambda t: t.key)
    )
