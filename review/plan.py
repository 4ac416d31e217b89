"""The review plan: the tickets a cycle needs, with the right people on each activity.

From the cycle, the selection, the RACI matrix and the role holders, `build_plan` returns the
desired tickets (`TicketSpec`): one cycle ticket carrying the cycle-scoped activities as sub-tasks,
and per selected service a review ticket (its body is the review pack) with one sub-task per
service-scoped activity. Keys are deterministic (`ticket_key`), so the sync layer never creates a
ticket twice.

Per sub-task: the assignee is the first person of the first R role (matrix order) that has one.
Accountable is the A role's holder. Consulted and informed never repeat the assignee or the
accountable person, and informed never repeats a consulted one: one person holding several roles
gets one assignment. A role nobody holds is a gap; a sub-task without any R holder stays unassigned
(the target applies its fallback assignee).

Every R in their own queue: a service-scoped activity whose R roles resolve to several distinct
people (seed: "Participate in service review" - SLM process owner, Service Level Manager, each CI
owner) gets one sub-task per R person, titled with their part; closing one records that person's
part (attendance). The first R person's sub-task keeps the activity's key (`activity_ticket_key`),
each further one gets `part_ticket_key`: the activity key plus the person's first single-holder R
role, or for a shared role (CI owner) the role and a short hash of the person's email. The A,
C and I people are the same on each part; R people are never consulted on each other's parts.
An activity with one R person is planned exactly as before (same key, same spec hash).
Cycle-scoped activities stay one sub-task (the LT selects as one body; the other LT members are
consulted).

Cycle-scoped activities resolve the Service Level Manager and CI owner roles over the selected
services, or over every candidate service while nothing is selected yet.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict

from review import document as doc
from review.cycle import Cycle
from review.gaps import unfilled_role_gap
from review.model import Gap, GapKind, Person, ReviewPack, Service, TicketKind, TicketSpec
from review.raci import Activity, Letter, RaciMatrix, Role, Scope
from review.references import person_mention
from review.roles import (
    SHARED_SERVICE_ROLES,
    ResponsiblePart,
    RoleHolders,
    cycle_role_holders,
    identity,
    responsible_parts,
    service_role_holders,
)
from review.selection import (
    Candidate,
    SelectionStatus,
    Unmatched,
    assign_tokens,
    selection_activities,
    selection_document,
)

SYNC_LABEL = "slm-sync"
MAX_KEY_LENGTH = 200
MAX_TITLE_LENGTH = 255  # Jira's summary limit
_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9:_.-]+")


def ticket_key(cycle_id: str, *parts: str) -> str:
    """`slm:<cycle>:<parts...>`, or `slm:h:<24 hex of sha256>` if too long or not label-safe."""
    key = ":".join(("slm", cycle_id, *parts))
    if len(key) > MAX_KEY_LENGTH or not _KEY_CHARACTERS.fullmatch(key):
        return "slm:h:" + hashlib.sha256(key.encode()).hexdigest()[:24]
    return key


def cycle_ticket_key(cycle_id: str) -> str:
    """Key of the cycle ticket."""
    return ticket_key(cycle_id, "cycle")


def review_ticket_key(cycle_id: str, service_key: str) -> str:
    """Key of one service's review ticket."""
    return ticket_key(cycle_id, service_key, "review")


def review_keys(
    cycle_ids: Iterable[str], service_keys: Iterable[str]
) -> dict[str, tuple[str, str]]:
    """Review ticket key -> (cycle, service key), for every pair: finds hashed keys' service."""
    services = list(dict.fromkeys(service_keys))
    return {
        review_ticket_key(cycle_id, service_key): (cycle_id, service_key)
        for cycle_id in dict.fromkeys(cycle_ids)
        for service_key in services
    }


def cycle_of_key(key: str) -> str | None:
    """The cycle of a cycle ticket key `slm:<cycle>:cycle` (never hashed), else None."""
    parts = key.split(":")
    return parts[1] if len(parts) == 3 and parts[0] == "slm" and parts[2] == "cycle" else None


def activity_ticket_key(cycle_id: str, activity_id: str, service_key: str | None = None) -> str:
    """Key of an activity sub-task: under the cycle ticket, or under a service's review ticket."""
    return ticket_key(cycle_id, service_key or "cycle", activity_id)


def part_ticket_key(
    cycle_id: str, activity_id: str, service_key: str, part: ResponsiblePart
) -> str:
    """Key of a further R person's sub-task: `slm:<cycle>:<service>:<activity>:<part>`."""
    return ticket_key(cycle_id, service_key, activity_id, part_token(part))


def part_token(part: ResponsiblePart) -> str:
    """The person's first R role only they hold (`service_level_manager`), else for a shared role
    the role and 10 hex of sha256 of their email (`ci_owner-3f2a...`): stable, label-safe."""
    for role in part.roles:
        if role not in SHARED_SERVICE_ROLES:
            return role.value
    digest = hashlib.sha256(identity(part.person).encode()).hexdigest()[:10]
    return f"{part.roles[0].value}-{digest}"


class Assignment(BaseModel):
    """Who does, answers for, is asked about and is told about one activity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    assignee: Person | None
    accountable: Person | None
    consulted: tuple[Person, ...]
    informed: tuple[Person, ...]
    also_responsible: tuple[Person, ...] = ()  # the other R people, each on their own sub-task


class ReviewPlan(BaseModel):
    """The desired tickets of a cycle, parents before children, and the gaps found planning."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tickets: tuple[TicketSpec, ...]
    gaps: tuple[Gap, ...] = ()


def assign(activity: Activity, holders_of: Mapping[Role, Sequence[Person]]) -> Assignment:
    """Apply one matrix row to the people holding each role."""
    responsible = [p for role in activity.roles_with(Letter.R) for p in holders_of.get(role, ())]
    accountable_people = holders_of.get(activity.accountable, ())
    assignee = responsible[0] if responsible else None
    accountable = accountable_people[0] if accountable_people else None
    taken = {identity(p) for p in (assignee, accountable) if p is not None}
    consulted = _take(
        [*responsible[1:], *_holding(activity, Letter.C, holders_of)],
        taken,
    )
    informed = _take(_holding(activity, Letter.I, holders_of), taken)
    return Assignment(
        assignee=assignee, accountable=accountable, consulted=consulted, informed=informed
    )


def assign_part(
    activity: Activity,
    holders_of: Mapping[Role, Sequence[Person]],
    part: ResponsiblePart,
    parts: Sequence[ResponsiblePart],
) -> Assignment:
    """One R person's share of an activity several people are responsible for."""
    accountable_people = holders_of.get(activity.accountable, ())
    accountable = accountable_people[0] if accountable_people else None
    others = tuple(p.person for p in parts if p is not part)
    taken = {identity(p) for p in (part.person, accountable, *others) if p is not None}
    consulted = _take(_holding(activity, Letter.C, holders_of), taken)
    informed = _take(_holding(activity, Letter.I, holders_of), taken)
    return Assignment(
        assignee=part.person,
        accountable=accountable,
        consulted=consulted,
        informed=informed,
        also_responsible=others,
    )


def _holding(
    activity: Activity, letter: Letter, holders_of: Mapping[Role, Sequence[Person]]
) -> list[Person]:
    return [p for role in activity.roles_with(letter) for p in holders_of.get(role, ())]


def _take(people: Sequence[Person], taken: set[str]) -> tuple[Person, ...]:
    """People not yet taken, in order; marks them taken."""
    kept: list[Person] = []
    for person in people:
        if identity(person) not in taken:
            taken.add(identity(person))
            kept.append(person)
    return tuple(kept)


@dataclass
class PlanMemo:
    """Each selected service's review ticket and sub-tasks (and the gaps found planning them)
    as last planned, with what they were planned from: the cycle, the matrix, the role
    holders, the service and its pack. Planning a service again from the same inputs gives the
    same tickets (planning reads nothing else), so `build_plan` reuses them: a cycle in which
    nothing changed plans no review, and a spec reused is the same object (its hash is kept,
    `sync.reconcile.SpecHashes`)."""

    kept: dict[str, tuple[tuple[Any, ...], list[TicketSpec], list[Gap]]] = field(
        default_factory=dict
    )
    planned: int = 0  # services planned (not reused) since the start (tests count them)

    def tickets(
        self,
        inputs: tuple[Any, ...],
        service_key: str,
        plan: Callable[[], tuple[list[TicketSpec], list[Gap]]],
    ) -> tuple[list[TicketSpec], list[Gap]]:
        """The service's tickets and gaps: last time's if `inputs` are the same, else `plan()`."""
        kept = self.kept.get(service_key)
        if kept is not None and all(a is b or a == b for a, b in zip(kept[0], inputs, strict=True)):
            return kept[1], kept[2]
        self.planned += 1
        tickets, gaps = plan()
        self.kept[service_key] = (inputs, tickets, gaps)
        return tickets, gaps

    def keep_only(self, service_keys: Iterable[str]) -> None:
        """Forget the services no longer selected."""
        wanted = set(service_keys)
        for key in [k for k in self.kept if k not in wanted]:
            del self.kept[key]


def build_plan(
    cycle: Cycle,
    matrix: RaciMatrix,
    holders: RoleHolders,
    services: Sequence[Service],
    selection: Sequence[str],
    *,
    packs: Mapping[str, ReviewPack] | None = None,
    candidates: Sequence[Candidate] = (),
    activity_bodies: Mapping[str, doc.Document] | None = None,
    selection_status: SelectionStatus | None = None,
    memo: PlanMemo | None = None,
) -> ReviewPlan:
    """The tickets of a cycle: cycle ticket and sub-tasks, then each selected service's review.

    `activity_bodies`: content appended to a cycle activity's sub-task by activity id (the cycle
    summary of lessons learned, the policy changes of update policies). `selection_status`:
    what the tickets say about the selection (tokens as remembered, entries that name no
    service, ...); without it the tokens come from the services' names.

    The cycle ticket carries no selection labels of ours: the LT's labels are read, never
    written, so a label someone removed is never put back."""
    by_key = {s.key: s for s in services}
    names = {s.key: s.name for s in services}
    status = selection_status or SelectionStatus(tokens=assign_tokens(names))
    chosen = list(dict.fromkeys(selection))
    selected = [by_key[k] for k in chosen if k in by_key]
    gaps = [_unknown_selection(k) for k in chosen if k not in by_key]
    gaps += [_unmatched_gap(entry) for entry in status.unmatched]
    tickets = _cycle_tickets(cycle, matrix, holders, selected or list(services), gaps)
    opening = selection_activities(matrix)
    bodies = dict(activity_bodies or {})
    bodies.update((activity.id, _selection_how_to(status)) for activity in opening)
    for index, ticket in enumerate(tickets):
        extra = bodies.get(ticket.activity_id or "")
        if extra is not None and extra.blocks:
            blocks = (*ticket.body.blocks, *extra.blocks)
            tickets[index] = ticket.model_copy(update={"body": doc.Document(blocks=blocks)})
    task = opening[0].name if opening else "Select services for review"
    body = selection_document(candidates, chosen, names, status, task=task)
    tickets[0] = tickets[0].model_copy(update={"body": body})
    for service in selected:
        pack = (packs or {}).get(service.key)
        if memo is None:
            tickets.extend(_service_tickets(cycle, matrix, holders, service, pack, gaps))
            continue
        inputs = (cycle, matrix, holders, service, pack)
        planned, found = memo.tickets(inputs, service.key, partial(_planned, *inputs))
        tickets.extend(planned)
        gaps.extend(found)
    if memo is not None:
        memo.keep_only(chosen)
    return ReviewPlan(tickets=tuple(tickets), gaps=tuple(dict.fromkeys(gaps)))


def _planned(
    cycle: Cycle,
    matrix: RaciMatrix,
    holders: RoleHolders,
    service: Service,
    pack: ReviewPack | None,
) -> tuple[list[TicketSpec], list[Gap]]:
    """One service's tickets and the gaps found planning them."""
    gaps: list[Gap] = []
    return _service_tickets(cycle, matrix, holders, service, pack, gaps), gaps


def _cycle_tickets(
    cycle: Cycle,
    matrix: RaciMatrix,
    holders: RoleHolders,
    population: Sequence[Service],
    gaps: list[Gap],
) -> list[TicketSpec]:
    parent = cycle_ticket_key(cycle.id)
    holders_of = {role: cycle_role_holders(role, population, holders) for role in Role}
    activities = matrix.in_scope(Scope.CYCLE)
    gaps.extend(_unfilled_roles(activities, holders_of, None))
    subtasks = [_single_ticket(cycle, a, holders_of, parent, None) for a in activities]
    owner = holders.slm_process_owner
    cycle_ticket = TicketSpec(
        key=parent,
        kind=TicketKind.CYCLE,
        title=f"SLM review cycle {cycle.id}",
        body=doc.Document(),
        assignee=owner,
        accountable=owner,
        due=_latest(subtasks),
        labels=(SYNC_LABEL, parent),
    )
    return [cycle_ticket, *subtasks]


def _service_tickets(
    cycle: Cycle,
    matrix: RaciMatrix,
    holders: RoleHolders,
    service: Service,
    pack: ReviewPack | None,
    gaps: list[Gap],
) -> list[TicketSpec]:
    parent = review_ticket_key(cycle.id, service.key)
    holders_of = {role: service_role_holders(role, service, holders) for role in Role}
    activities = matrix.in_scope(Scope.SERVICE)
    gaps.extend(_unfilled_roles(activities, holders_of, service))
    subtasks = [
        ticket
        for activity in activities
        for ticket in _activity_tickets(cycle, activity, holders_of, parent, service)
    ]
    body = pack.body if pack else doc.Document(blocks=(doc.paragraph(_NO_PACK),))
    review = TicketSpec(
        key=parent,
        parent_key=None,
        kind=TicketKind.REVIEW,
        title=_title(f"Service review {cycle.id}: {service.name}"),
        body=body,
        assignee=service.owner,
        accountable=service.lt_sponsor or holders.default_lt_sponsor,
        due=_latest(subtasks),
        labels=(SYNC_LABEL, parent),
        service_key=service.key,
    )
    return [review, *subtasks]


def _activity_tickets(
    cycle: Cycle,
    activity: Activity,
    holders_of: Mapping[Role, Sequence[Person]],
    parent: str,
    service: Service,
) -> list[TicketSpec]:
    """A service activity's sub-tasks: one, or one per distinct R person when there are several."""
    parts = responsible_parts(activity, holders_of)
    if len(parts) < 2:
        return [_single_ticket(cycle, activity, holders_of, parent, service)]
    first = activity_ticket_key(cycle.id, activity.id, service.key)
    return [
        _activity_ticket(
            cycle,
            activity,
            assign_part(activity, holders_of, part, parts),
            key=first if index == 0 else part_ticket_key(cycle.id, activity.id, service.key, part),
            parent=parent,
            service=service,
            part=part,
        )
        for index, part in enumerate(parts)
    ]


def _single_ticket(
    cycle: Cycle,
    activity: Activity,
    holders_of: Mapping[Role, Sequence[Person]],
    parent: str,
    service: Service | None,
) -> TicketSpec:
    """The one sub-task of an activity, with the first R person as assignee (as before parts)."""
    parts = responsible_parts(activity, holders_of)
    return _activity_ticket(
        cycle,
        activity,
        assign(activity, holders_of),
        key=activity_ticket_key(cycle.id, activity.id, service.key if service else None),
        parent=parent,
        service=service,
        part=None,
        roles=parts[0].roles if parts else (),
    )


def _activity_ticket(
    cycle: Cycle,
    activity: Activity,
    assignment: Assignment,
    *,
    key: str,
    parent: str,
    service: Service | None,
    part: ResponsiblePart | None,
    roles: tuple[Role, ...] = (),
) -> TicketSpec:
    """One activity sub-task; `part` names whose share it is when the activity is split."""
    due = (
        cycle.opens + timedelta(days=activity.due_offset_days)
        if activity.due_offset_days is not None
        else None
    )
    where = service.name if service else f"cycle {cycle.id}"
    name = f"{activity.name} — {part.title}" if part else activity.name
    return TicketSpec(
        key=key,
        parent_key=parent,
        kind=TicketKind.ACTIVITY,
        title=_title(f"{name}: {where}"),
        body=_activity_body(activity, assignment, where, due, part),
        assignee=assignment.assignee,
        accountable=assignment.accountable,
        consulted=assignment.consulted,
        informed=assignment.informed,
        due=due,
        labels=(SYNC_LABEL, key),
        service_key=service.key if service else None,
        activity_id=activity.id,
        responsible_roles=tuple(r.value for r in (part.roles if part else roles)),
    )


def _activity_body(
    activity: Activity,
    assignment: Assignment,
    where: str,
    due: date | None,
    part: ResponsiblePart | None,
) -> doc.Document:
    items: tuple[tuple[doc.Inline, ...], ...] = (
        (doc.text("Responsible: ", strong=True), *_people([assignment.assignee])),
    )
    if part is not None:
        items += (
            (doc.text("Also responsible: ", strong=True), *_people(assignment.also_responsible)),
        )
    items += (
        (doc.text("Accountable: ", strong=True), *_people([assignment.accountable])),
        (doc.text("Consulted: ", strong=True), *_people(assignment.consulted)),
        (doc.text("Informed: ", strong=True), *_people(assignment.informed)),
        (doc.text("Due: ", strong=True), doc.text(due.isoformat() if due else "not scheduled")),
    )
    intro = doc.paragraph(doc.text(activity.name, strong=True), f" for {where}.")
    if part is not None:
        intro = doc.paragraph(
            doc.text(activity.name, strong=True),
            f" for {where}: this sub-task is the part of {part.title}. Each responsible person "
            "has their own sub-task; close yours when your part is done.",
        )
    return doc.Document(blocks=(intro, doc.BulletList(items=items)))


def _people(persons: Sequence[Person | None]) -> tuple[doc.Inline, ...]:
    found = [p for p in persons if p is not None]
    if not found:
        return (doc.text("nobody named yet"),)
    mentions: list[doc.Inline] = []
    for index, person in enumerate(found):
        if index:
            mentions.append(doc.text(", "))
        mentions.append(person_mention(person))
    return tuple(mentions)


def _unfilled_roles(
    activities: Sequence[Activity],
    holders_of: Mapping[Role, Sequence[Person]],
    service: Service | None,
) -> list[Gap]:
    """One gap per role that an activity needs and nobody holds, naming those activities."""
    needed: dict[Role, list[str]] = {}
    for activity in activities:
        for role, _letters in activity.raci:
            if not holders_of.get(role):
                needed.setdefault(role, []).append(activity.name)
    return [
        unfilled_role_gap(service, role.display_name, names)
        for role, names in sorted(needed.items(), key=lambda item: list(Role).index(item[0]))
    ]


def _unknown_selection(service_key: str) -> Gap:
    return Gap(
        kind=GapKind.UNKNOWN_SELECTION,
        service_key=service_key,
        subject=service_key,
        detail="selected (its review ticket exists), but no service with this key came from "
        "the source any more; check the service in the source",
    )


def _unmatched_gap(entry: Unmatched) -> Gap:
    """Something the LT wrote (or review.selection holds) that names no service: a gap of
    the cycle, ignored for the selection."""
    nearest = f"; nearest: {', '.join(entry.nearest)}" if entry.nearest else ""
    return Gap(
        kind=GapKind.UNKNOWN_SELECTION,
        subject=entry.written,
        detail=f"{entry.where}: {entry.problem}{nearest}",
    )


def _selection_how_to(status: SelectionStatus) -> doc.Document:
    """What the selection sub-task adds to its body: how the LT selects, and when reviews open."""
    if status.configured:
        text = (
            "The selection is set by the administrator (review.selection in the settings); "
            "the cycle ticket lists the services."
        )
    else:
        text = (
            "How to select: the cycle ticket lists the ranked candidates with their tokens. "
            "Add a token as a label to the cycle ticket (Jira), or write tokens or exact "
            "service names in a comment / work note here or on the cycle ticket, one per line "
            "(a line \u201cremove: <token or name>\u201d takes one back). Close this sub-task "
            "when the selection is complete: review tickets open at the first sync after that."
        )
    return doc.Document(blocks=(doc.paragraph(text),))


def _latest(tickets: Sequence[TicketSpec]) -> date | None:
    return max((t.due for t in tickets if t.due is not None), default=None)


def _title(text: str) -> str:
    return text if len(text) <= MAX_TITLE_LENGTH else text[: MAX_TITLE_LENGTH - 1] + "…"


_NO_PACK = "The review pack is prepared from the source data at the next sync."
