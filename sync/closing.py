"""Closing what is finished: a review ticket when all its sub-tasks are done, the cycle ticket
when the cycle is closed (its closing activities are done).

The rule, per ticket, remembered as the `close` step of `ticket_steps`:
- condition holds and the ticket is open, no `done` step: slm-sync closes it (Jira: the
  `jira.done_transition`; ServiceNow: Closed Complete) and records the step `done`;
- condition holds and the ticket is already closed (by us or by a person): recorded `done`;
- condition holds, the ticket is open and the step is `done`: a person reopened it after it
  was closed; it is left open (logged `close.reopen_respected`);
- condition no longer holds (a sub-task was reopened or added): the step is `armed` again, so
  the next time everything is done the ticket is closed once more.
So each ticket is closed at most once per change of its condition. A close that fails (no such
transition, 4xx, 5xx) is logged and tried again next cycle; it never fails the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import structlog

from connectors import ConnectorError, TargetConnector, TicketRef
from sync.state import StateStore, StepRow

log = structlog.get_logger("slm_sync.closing")
CLOSE_STEP = "close"
DONE = "done"
ARMED = "armed"


@runtime_checkable
class ClosesTickets(Protocol):
    """A target that can close a ticket (False: it has no way to, e.g. no such transition)."""

    def close(self, ref: TicketRef) -> bool: ...


@dataclass(frozen=True)
class CloseCheck:
    """One ticket slm-sync may close: whether its condition holds and whether it is closed."""

    key: str  # idempotency key
    ref: TicketRef
    ready: bool  # all sub-tasks done (review) / closing activities done (cycle)
    done: bool  # the ticket is closed now, as read from the target


def close_finished(
    target: TargetConnector,
    store: StateStore,
    checks: Sequence[CloseCheck],
    steps: Mapping[tuple[str, str], StepRow] | None = None,
) -> list[str]:
    """Apply the close rule to each ticket; the idempotency keys closed in this run.

    `steps`: the cycle's `ticket_steps` already read (the engine's follow-ups), else read here.
    """
    if steps is None:
        steps = store.steps(target.system)
    closed: list[str] = []
    for check in checks:
        step = steps.get((check.key, CLOSE_STEP))
        remembered = step.state if step is not None else None
        if not check.ready:
            if remembered == DONE:
                _remember(target, store, check.key, ARMED)
        elif check.done:
            if remembered != DONE:
                _remember(target, store, check.key, DONE)
        elif remembered == DONE:
            log.info("close.reopen_respected", key=check.key, ticket=check.ref.key)
        elif _close(target, check):
            _remember(target, store, check.key, DONE)
            closed.append(check.key)
    return closed


def _close(target: TargetConnector, check: CloseCheck) -> bool:
    if not isinstance(target, ClosesTickets):
        log.warning("close.unsupported", system=target.system, key=check.key)
        return False
    try:
        moved = target.close(check.ref)
    except ConnectorError as error:  # any failure: tried again next cycle
        log.warning("close.failed", key=check.key, ticket=check.ref.key, error=str(error))
        return False
    if not moved:
        log.warning(
            "close.no_transition",
            key=check.key,
            ticket=check.ref.key,
            hint="no transition matches jira.done_transition from the ticket's status; "
            "set jira.done_transition to a transition or status name of the workflow",
        )
        return False
    log.info("ticket.closed", system=target.system, key=check.key, ticket=check.ref.key)
    return True


def _remember(target: TargetConnector, store: StateStore, key: str, state: str) -> None:
    store.record_step(target.system, key, CLOSE_STEP, state=state, digest="")
