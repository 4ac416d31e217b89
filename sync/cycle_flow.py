"""The review cycle as a state machine, read back from the tickets (two-way).

    selecting ──(LT marks the selection sub-task done, or review.selection is configured)──►
    reviewing ──(every service-scoped sub-task of every selected service is done)──►
    closing   ──(the closing cycle activities are done)──► closed

- selecting: the cycle ticket and its opening activities (those before the first service-scoped
  activity in the matrix: "Select services …") exist; the LT selects by tokens as labels on the
  cycle ticket or in notes (`sync.selection`) and closes the selection sub-task. The selection
  is read, never written: slm-sync adds no label, so a label someone removed stays removed.
- reviewing: a review ticket per selected service with a sub-task per service-scoped activity;
  its pack is refreshed until "Participate in service review" is done, then frozen.
- closing: the closing cycle activities (after the last service-scoped one: lessons learned,
  update process policies) are opened.
- Each phase also says which review tickets (every sub-task done) and whether the cycle ticket
  (cycle closed) may be closed; `sync.closing` closes them, respecting what people did.

The tickets win over the state file. While the cycle is selecting or reviewing, the selection
is read from the tickets every cycle: a service selected after the selection sub-task was done
gets its review at the next sync; a service whose review ticket exists stays selected whatever
the labels say (tickets are never deleted). `review.selection` in the settings, when set, wins
over the tickets. Tickets the ledger does not know (a lost or stale state file) are looked up by
their idempotency keys and adopted into the ledger (`adopt_tickets`) before they are read, so a
new state file finds the same cycle, selection and progress.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from connectors import TargetConnector, TicketComment, TicketRef, TicketState
from review import (
    Cycle,
    RaciMatrix,
    Scope,
    TicketKind,
    TicketSpec,
    activity_ticket_key,
    cycle_ticket_key,
    review_keys,
    review_ticket_key,
)
from review.selection import Selectable, SelectionStatus, selection_activities
from sync.closing import CloseCheck
from sync.selection import (
    Choice,
    configured_choice,
    read_choice,
    remembered_selectable,
)
from sync.selection import (
    tell_unmatched as comment_once,
)
from sync.state import LedgerRow, StateStore

log = structlog.get_logger("slm_sync.cycle")

FREEZE_ACTIVITY = "participate_review"


class CycleState(StrEnum):
    """Where a cycle is."""

    SELECTING = "selecting"
    REVIEWING = "reviewing"
    CLOSING = "closing"
    CLOSED = "closed"


OPEN_STATES = (CycleState.SELECTING, CycleState.REVIEWING)  # the selection is still read


@dataclass(frozen=True)
class CyclePhase:
    """The cycle's state, its selection, and review tickets whose review has happened.

    `selection_status`: what the cycle ticket says about the selection (tokens, what the LT
    wrote that names no service, reviews kept although unselected): `build_plan` renders it."""

    state: CycleState
    selection: tuple[str, ...] = ()
    frozen_reviews: frozenset[str] = field(default_factory=frozenset)
    # review and cycle tickets with whether they may be closed (sync.closing applies the rule)
    closable: tuple[CloseCheck, ...] = ()
    selection_status: SelectionStatus | None = None
    # review tickets whose sub-tasks were adopted this cycle (a lost state file): not closable
    # before the apply has found all their sub-tasks; `closable_after_apply` checks them again
    deferred: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Expected:
    """A ticket the cycle should have by now: its idempotency key, kind and parent key."""

    key: str
    kind: TicketKind
    parent_key: str | None = None


def adopt_tickets(
    target: TargetConnector, store: StateStore, expected: Iterable[Expected]
) -> dict[str, TicketRef]:
    """Tickets the target has for expected keys the ledger does not know, recorded in the
    ledger as created, the way the reconciler adopts them; returns what was adopted.

    Only keys without any ledger row are looked up (one `find` for all): a row in another state
    (intent, sending, in doubt) is the reconciler's to settle. The adopted row's applied hash is
    empty, so the next apply brings the ticket to its spec (people's changes to fields we do not
    own stay). A lost or stale state file thus finds the cycle's tickets before they are read."""
    ledger = store.ledger_rows(target.system)
    unknown = {e.key: e for e in expected if e.key not in ledger}
    if not unknown:
        return {}
    found = target.find(list(unknown))
    for key, ref in found.items():
        if key not in unknown:
            continue
        wanted = unknown[key]
        system = target.system
        store.record_intent(system, key, parent_key=wanted.parent_key, kind=wanted.kind,
                            spec_hash="")  # fmt: skip
        store.record_created(system, key, ticket_key=ref.key, ticket_id=ref.id,
                             ticket_url=ref.url, applied_hash="")  # fmt: skip
        log.info("ticket.adopted", key=key, ticket=ref.key, by="cycle")
    return {key: ref for key, ref in found.items() if key in unknown}


def opening_activities(matrix: RaciMatrix) -> tuple[str, ...]:
    """Cycle activities before the first service-scoped one (select services)."""
    return tuple(a.id for a in selection_activities(matrix))


def closing_activities(matrix: RaciMatrix) -> tuple[str, ...]:
    """Cycle activities after the last service-scoped one (lessons learned, update policies)."""
    opening = set(opening_activities(matrix))
    return tuple(a.id for a in matrix.in_scope(Scope.CYCLE) if a.id not in opening)


@dataclass
class CycleFlow:
    """Reads the cycle's tickets back and decides its state; the store remembers it."""

    store: StateStore
    target: TargetConnector
    matrix: RaciMatrix
    configured_selection: Sequence[str] = ()
    # the cycle ticket's comments read by `phase`, for `tell_unmatched` (told once)
    _seen: tuple[TicketComment, ...] = field(default=(), init=False, repr=False)
    _adopted: set[str] = field(default_factory=set, init=False, repr=False)

    def phase(self, cycle: Cycle) -> CyclePhase:
        """The cycle's phase now, advancing it when the tickets say a step is done."""
        saved = self.store.cycle(cycle.id)
        state = CycleState(saved[0]) if saved else CycleState.SELECTING
        # Sorted everywhere: the selection shows in the cycle ticket, whose content must not
        # change between runs just because the selection was read back in another order.
        before = tuple(sorted(saved[1] or ())) if saved else ()
        selectable = remembered_selectable(self.store, self.target.system)
        adopted = self._adopt(self._expected(cycle, opening_activities(self.matrix)))
        reading = not self.configured_selection and state in OPEN_STATES
        states, choice, closed = self._choice(cycle, selectable, reading, before)
        # A cycle ticket found only by lookup: the state file was lost, and with it which
        # services have review tickets; they are all looked up once (and adopted).
        lost = cycle_ticket_key(cycle.id) in adopted
        reviewed = self._reviewed(cycle, selectable, [*before, *choice.selected], lookup=lost)
        state, selection = _selected(state, choice, reviewed, before, closed)
        status = SelectionStatus(
            tokens=selectable.tokens,
            chosen=tuple(sorted(choice.selected)),
            kept=tuple(sorted(set(reviewed) - set(choice.selected))) if reading else (),
            unmatched=choice.unmatched,
            closed=closed,
            configured=bool(self.configured_selection),
        )
        state = self._advance(cycle, state, states, selection)
        ledger = self.store.ledger_rows(self.target.system)
        frozen = frozenset(
            review_ticket_key(cycle.id, key)
            for key in selection
            if _done(states, ledger, activity_ticket_key(cycle.id, FREEZE_ACTIVITY, key))
        )
        if saved is None or (state.value, selection) != (saved[0], before):
            if selection != before:
                log.info("cycle.selection_read", cycle=cycle.id, services=list(selection))
            self._save(cycle, state, selection)
        closable = _close_checks(cycle, state, states, ledger, selection, self._adopted)
        reviews = [review_ticket_key(cycle.id, key) for key in selection]
        children = _children_of(ledger)
        deferred = frozenset(
            review
            for review in reviews
            if any(row.key in self._adopted for row in children.get(review, ()))
        )
        return CyclePhase(state, selection, frozen, closable, status, deferred)

    def closable_after_apply(self, cycle: Cycle, phase: CyclePhase) -> tuple[CloseCheck, ...]:
        """`phase.closable`, with the reviews whose sub-tasks were adopted this cycle checked
        again now that the apply found all of them (each further R person's sub-task has its
        own key): after a lost state file, a finished review still closes in this cycle. Reads
        the states of those reviews' tickets only (none in a steady cycle)."""
        if not phase.deferred:
            return phase.closable
        ledger = self.store.ledger_rows(self.target.system)
        children = _children_of(ledger)
        keys = [
            k for r in sorted(phase.deferred) for k in (r, *(c.key for c in children.get(r, ())))
        ]
        states = self._states(ledger, keys)
        checks = []
        for check in phase.closable:
            if check.key in phase.deferred:
                ready = _subtasks_done(check.key, states, ledger, set(), children)
                found = _state_of(states, ledger, check.key)
                check = CloseCheck(check.key, check.ref, ready, found.done if found else check.done)
            checks.append(check)
        return tuple(checks)

    def wanted(
        self, cycle: Cycle, phase: CyclePhase, tickets: Sequence[TicketSpec]
    ) -> list[TicketSpec]:
        """The planned tickets this phase should have in the target."""
        hidden = set()
        if phase.state in (CycleState.SELECTING, CycleState.REVIEWING):
            hidden = {activity_ticket_key(cycle.id, a) for a in closing_activities(self.matrix)}
        return [t for t in tickets if t.key not in hidden]

    def tell_unmatched(self, cycle: Cycle, phase: CyclePhase) -> None:
        """Comment once on the cycle ticket about selection entries that name no service (call
        after the apply, never in a dry run). Entries of review.selection are only listed in
        the cycle ticket: the settings are not fixed in a ticket."""
        status = phase.selection_status
        row = self.store.ledger_rows(self.target.system).get(cycle_ticket_key(cycle.id))
        if status is None or status.configured or not status.unmatched:
            return
        if row is None or row.state != "created":
            return
        comment_once(self.target, self.store, row.key, _ref(row), status.unmatched, self._seen)

    # ---- reading the tickets ---------------------------------------------------------------
    def _choice(
        self, cycle: Cycle, selectable: Selectable, reading: bool, before: Sequence[str]
    ) -> tuple[dict[str, TicketState], Choice, bool]:
        """The cycle ticket's and selection sub-tasks' states (with people's notes while the
        selection is read), what they select, and whether the selection sub-task is done."""
        ledger = self.store.ledger_rows(self.target.system)
        keys = self._opening_keys(cycle)
        states = self._states(ledger, keys, comments=reading)
        cycle_ticket = _state_of(states, ledger, keys[0])
        tasks = [t for t in (_state_of(states, ledger, k) for k in keys[1:]) if t is not None]
        self._seen = cycle_ticket.comments if cycle_ticket else ()
        if self.configured_selection:
            return states, configured_choice(selectable, self.configured_selection), True
        done = bool(keys[1:]) and all(_done(states, ledger, k) for k in keys[1:])
        if not reading:
            return states, Choice(selected=tuple(before)), done
        return states, read_choice(selectable, cycle_ticket, tasks), done

    def _advance(
        self,
        cycle: Cycle,
        state: CycleState,
        states: dict[str, TicketState],
        selection: Sequence[str],
    ) -> CycleState:
        """Reviewing -> closing when every selected review's sub-tasks are done; closing ->
        closed when the closing activities are (looked up only from closing on: they are
        created then). `states` gains what is read here."""
        ledger = self.store.ledger_rows(self.target.system)
        states.update(self._states(ledger, self._progress_keys(cycle, ledger, selection)))
        if (
            state is CycleState.REVIEWING
            and selection
            and self._reviews_done(cycle, states, ledger, selection)
        ):
            state = CycleState.CLOSING
        if state not in (CycleState.CLOSING, CycleState.CLOSED):
            return state
        closing = closing_activities(self.matrix)
        self._adopt(self._expected(cycle, closing)[1:])
        ledger = self.store.ledger_rows(self.target.system)
        keys = [activity_ticket_key(cycle.id, a) for a in closing]
        states.update(self._states(ledger, keys))
        if state is CycleState.CLOSING and all(_done(states, ledger, k) for k in keys):
            state = CycleState.CLOSED
        return state

    def _adopt(self, expected: Iterable[Expected]) -> dict[str, TicketRef]:
        adopted = adopt_tickets(self.target, self.store, expected)
        self._adopted.update(adopted)
        return adopted

    def _expected(self, cycle: Cycle, activities: Sequence[str]) -> list[Expected]:
        """The cycle ticket and the sub-tasks of these cycle activities."""
        parent = cycle_ticket_key(cycle.id)
        return [
            Expected(parent, TicketKind.CYCLE),
            *(
                Expected(activity_ticket_key(cycle.id, a), TicketKind.ACTIVITY, parent)
                for a in activities
            ),
        ]

    def _opening_keys(self, cycle: Cycle) -> list[str]:
        """The cycle ticket, then the selection sub-tasks: where the LT selects."""
        return [e.key for e in self._expected(cycle, opening_activities(self.matrix))]

    def _reviewed(
        self, cycle: Cycle, selectable: Selectable, known: Sequence[str], *, lookup: bool
    ) -> list[str]:
        """Services whose review ticket of this cycle exists, as the ledger knows them; with
        `lookup` every service's review ticket is looked up first (and adopted, with its
        activity sub-tasks)."""
        everyone = sorted({*selectable.names, *known})
        wanted = review_keys([cycle.id], everyone)
        if lookup:
            found = self._adopt(Expected(key, TicketKind.REVIEW) for key in wanted)
            self._adopt(
                Expected(
                    activity_ticket_key(cycle.id, a.id, wanted[key][1]), TicketKind.ACTIVITY, key
                )
                for key in found
                for a in self.matrix.in_scope(Scope.SERVICE)
            )
        ledger = self.store.ledger_rows(self.target.system)
        return sorted(
            service
            for key, (_, service) in wanted.items()
            if key in ledger and ledger[key].state == "created"
        )

    def _progress_keys(
        self, cycle: Cycle, ledger: dict[str, LedgerRow], selection: Sequence[str]
    ) -> list[str]:
        """The tickets whose done-ness moves the cycle on: each selected service's review and
        sub-tasks."""
        keys: list[str] = []
        children = _children_of(ledger)
        for service in selection:
            keys += [
                activity_ticket_key(cycle.id, a.id, service)
                for a in self.matrix.in_scope(Scope.SERVICE)
            ]
            review = review_ticket_key(cycle.id, service)
            keys += [review, *(r.key for r in children.get(review, ()))]
        return list(dict.fromkeys(keys))

    def _states(
        self, ledger: dict[str, LedgerRow], keys: Sequence[str], *, comments: bool = False
    ) -> dict[str, TicketState]:
        refs = [_ref(ledger[k]) for k in keys if k in ledger and ledger[k].state == "created"]
        if not refs:
            return {}
        return self.target.state(refs, comments=True) if comments else self.target.state(refs)

    def _reviews_done(
        self,
        cycle: Cycle,
        states: dict[str, TicketState],
        ledger: dict[str, LedgerRow],
        selection: Sequence[str],
    ) -> bool:
        service_activities = [a.id for a in self.matrix.in_scope(Scope.SERVICE)]
        return all(
            _done(states, ledger, activity_ticket_key(cycle.id, a, key))
            for key in selection
            for a in service_activities
        )

    def _save(self, cycle: Cycle, state: CycleState, selection: Sequence[str]) -> None:
        self.store.save_cycle(cycle.id, state.value, selection)
        log.info("cycle.state", cycle=cycle.id, state=state.value, selection=list(selection))


def _selected(
    state: CycleState,
    choice: Choice,
    reviewed: Sequence[str],
    before: Sequence[str],
    closed: bool,
) -> tuple[CycleState, tuple[str, ...]]:
    """The state and the selection the tickets say: services with a review ticket always; what
    the LT selects once the selection sub-task is done; while closing, what was selected."""
    picked = set(reviewed)
    if state in OPEN_STATES and closed:
        picked |= set(choice.selected)
    elif state not in OPEN_STATES:
        picked |= set(before)
    if state is CycleState.SELECTING and (closed or picked):
        state = CycleState.REVIEWING
    return state, tuple(sorted(picked))


def _close_checks(
    cycle: Cycle,
    state: CycleState,
    states: dict[str, TicketState],
    ledger: dict[str, LedgerRow],
    selection: Sequence[str],
    adopted: set[str],
) -> tuple[CloseCheck, ...]:
    """Each review ticket (ready: every sub-task it has is done) and the cycle ticket (ready:
    the cycle is closed), as far as the target showed them to us this cycle. A review whose
    sub-tasks were adopted this cycle is not ready yet: its further parts are found by the
    apply that follows, and the next cycle decides."""
    children = _children_of(ledger)
    wanted = [
        (key, _subtasks_done(review_ticket_key(cycle.id, key), states, ledger, adopted, children))
        for key in selection
    ]
    checks: list[CloseCheck] = []
    for key, ready in [
        *((review_ticket_key(cycle.id, service), done) for service, done in wanted),
        (cycle_ticket_key(cycle.id), state is CycleState.CLOSED),
    ]:
        found = _state_of(states, ledger, key)
        if found is not None:
            checks.append(CloseCheck(key, found.ref, ready, found.done))
    return tuple(checks)


def _children_of(ledger: dict[str, LedgerRow]) -> dict[str, list[LedgerRow]]:
    """Each parent key's rows, in the ledger's order (one pass: looked up per review)."""
    children: dict[str, list[LedgerRow]] = {}
    for row in ledger.values():
        if row.parent_key is not None:
            children.setdefault(row.parent_key, []).append(row)
    return children


def _subtasks_done(
    review: str,
    states: dict[str, TicketState],
    ledger: dict[str, LedgerRow],
    adopted: set[str],
    children_of: dict[str, list[LedgerRow]],
) -> bool:
    """The review has sub-tasks, all created, all done (one not created yet keeps it open)."""
    children = children_of.get(review, [])
    if any(row.key in adopted for row in children):
        return False
    return bool(children) and all(_done(states, ledger, row.key) for row in children)


def _ref(row: LedgerRow) -> TicketRef:
    return TicketRef(key=row.ticket_key or "", id=row.ticket_id or "", url=row.ticket_url)


def _state_of(
    states: dict[str, TicketState], ledger: dict[str, LedgerRow], key: str
) -> TicketState | None:
    row = ledger.get(key)
    return states.get(row.ticket_key or "") if row is not None else None


def _done(states: dict[str, TicketState], ledger: dict[str, LedgerRow], key: str) -> bool:
    found = _state_of(states, ledger, key)
    return found is not None and found.done
