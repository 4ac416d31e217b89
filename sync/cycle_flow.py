"""The review cycle as a state machine, read back from the tickets (two-way).

    selecting ──(LT marks the selection sub-task done, or review.selection is configured)──►
    reviewing ──(every service-scoped sub-task of every selected service is done)──►
    closing   ──(the closing cycle activities are done)──► closed

- selecting: the cycle ticket and its opening activities (those before the first service-scoped
  activity in the matrix: "Select services …") exist; the LT adds `slm-select-<service-key>`
  labels to the cycle ticket and closes the selection sub-task.
- reviewing: a review ticket per selected service with a sub-task per service-scoped activity;
  its pack is refreshed until "Participate in service review" is done, then frozen.
- closing: the closing cycle activities (after the last service-scoped one: lessons learned,
  update process policies) are opened.
- Each phase also says which review tickets (every sub-task done) and whether the cycle ticket
  (cycle closed) may be closed; `sync.closing` closes them, respecting what people did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from connectors import TargetConnector, TicketRef, TicketState
from review import (
    Cycle,
    RaciMatrix,
    Scope,
    TicketSpec,
    activity_ticket_key,
    cycle_ticket_key,
    review_ticket_key,
    selection_from_labels,
)
from sync.closing import CloseCheck
from sync.state import LedgerRow, StateStore

log = structlog.get_logger("slm_sync.cycle")

FREEZE_ACTIVITY = "participate_review"


class CycleState(StrEnum):
    """Where a cycle is."""

    SELECTING = "selecting"
    REVIEWING = "reviewing"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True)
class CyclePhase:
    """The cycle's state, its selection, and review tickets whose review has happened."""

    state: CycleState
    selection: tuple[str, ...] = ()
    frozen_reviews: frozenset[str] = field(default_factory=frozenset)
    # review and cycle tickets with whether they may be closed (sync.closing applies the rule)
    closable: tuple[CloseCheck, ...] = ()


def opening_activities(matrix: RaciMatrix) -> tuple[str, ...]:
    """Cycle activities before the first service-scoped one (select services)."""
    ids: list[str] = []
    for activity in matrix.activities:
        if activity.scope is Scope.SERVICE:
            break
        ids.append(activity.id)
    return tuple(ids)


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

    def phase(self, cycle: Cycle) -> CyclePhase:
        """The cycle's phase now, advancing it when the tickets say a step is done."""
        saved = self.store.cycle(cycle.id)
        state = CycleState(saved[0]) if saved else CycleState.SELECTING
        # Sorted everywhere: the selection shows in the cycle ticket, whose content must not
        # change between runs just because the selection was read back in another order.
        selection = tuple(sorted(saved[1] or ())) if saved else ()
        configured = tuple(sorted(dict.fromkeys(self.configured_selection)))
        if configured and configured != selection:  # the admin's list is authoritative
            if state is CycleState.SELECTING:
                state = CycleState.REVIEWING
            selection = configured
            self._save(cycle, state, selection)
        ledger = self.store.ledger_rows(self.target.system)
        states = self._ticket_states(cycle, ledger, selection)
        if state is CycleState.SELECTING:
            state, selection = self._after_selection(cycle, states, state, selection)
        frozen = frozenset(
            review_ticket_key(cycle.id, key)
            for key in selection
            if _done(states, ledger, activity_ticket_key(cycle.id, FREEZE_ACTIVITY, key))
        )
        if (
            state is CycleState.REVIEWING
            and selection
            and self._reviews_done(cycle, states, ledger, selection)
        ):
            state = CycleState.CLOSING
            self._save(cycle, state, selection)
        if state is CycleState.CLOSING and all(
            _done(states, ledger, activity_ticket_key(cycle.id, a))
            for a in closing_activities(self.matrix)
        ):
            state = CycleState.CLOSED
            self._save(cycle, state, selection)
        closable = _close_checks(cycle, state, states, ledger, selection)
        return CyclePhase(state, selection, frozen, closable)

    def wanted(
        self, cycle: Cycle, phase: CyclePhase, tickets: Sequence[TicketSpec]
    ) -> list[TicketSpec]:
        """The planned tickets this phase should have in the target."""
        hidden = set()
        if phase.state in (CycleState.SELECTING, CycleState.REVIEWING):
            hidden = {activity_ticket_key(cycle.id, a) for a in closing_activities(self.matrix)}
        return [t for t in tickets if t.key not in hidden]

    def _after_selection(
        self,
        cycle: Cycle,
        states: dict[str, TicketState],
        state: CycleState,
        selection: tuple[str, ...],
    ) -> tuple[CycleState, tuple[str, ...]]:
        ledger = self.store.ledger_rows(self.target.system)
        select_keys = [activity_ticket_key(cycle.id, a) for a in opening_activities(self.matrix)]
        if not select_keys or not all(_done(states, ledger, k) for k in select_keys):
            return state, selection
        cycle_ticket = _state_of(states, ledger, cycle_ticket_key(cycle.id))
        chosen = tuple(sorted(selection_from_labels(cycle_ticket.labels if cycle_ticket else ())))
        log.info("cycle.selection_read", cycle=cycle.id, services=list(chosen))
        self._save(cycle, CycleState.REVIEWING, chosen)
        return CycleState.REVIEWING, chosen

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

    def _ticket_states(
        self, cycle: Cycle, ledger: dict[str, LedgerRow], selection: Sequence[str]
    ) -> dict[str, TicketState]:
        keys = [cycle_ticket_key(cycle.id)]
        keys += [activity_ticket_key(cycle.id, a.id) for a in self.matrix.in_scope(Scope.CYCLE)]
        for service in selection:
            keys += [
                activity_ticket_key(cycle.id, a.id, service)
                for a in self.matrix.in_scope(Scope.SERVICE)
            ]
            review = review_ticket_key(cycle.id, service)
            keys += [review, *(r.key for r in _children(ledger, review))]
        keys = list(dict.fromkeys(keys))
        refs = [_ref(ledger[k]) for k in keys if k in ledger and ledger[k].state == "created"]
        return self.target.state(refs) if refs else {}

    def _save(self, cycle: Cycle, state: CycleState, selection: Sequence[str]) -> None:
        self.store.save_cycle(cycle.id, state.value, selection)
        log.info("cycle.state", cycle=cycle.id, state=state.value, selection=list(selection))


def _close_checks(
    cycle: Cycle,
    state: CycleState,
    states: dict[str, TicketState],
    ledger: dict[str, LedgerRow],
    selection: Sequence[str],
) -> tuple[CloseCheck, ...]:
    """Each review ticket (ready: every sub-task it has is done) and the cycle ticket (ready:
    the cycle is closed), as far as the target showed them to us this cycle."""
    wanted = [
        (key, _subtasks_done(review_ticket_key(cycle.id, key), states, ledger)) for key in selection
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


def _children(ledger: dict[str, LedgerRow], parent: str) -> list[LedgerRow]:
    return [row for row in ledger.values() if row.parent_key == parent]


def _subtasks_done(
    review: str, states: dict[str, TicketState], ledger: dict[str, LedgerRow]
) -> bool:
    """The review has sub-tasks, all created, all done (one not created yet keeps it open)."""
    children = _children(ledger, review)
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
