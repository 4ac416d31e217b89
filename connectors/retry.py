"""The one retry policy every connector uses (DESIGN.md "Talking to the tools").

Only `TransientError` is retried (429, 502, 503, 504, timeouts, connection resets, bodies cut
short), never `OutcomeUnknown` (a write that may have been applied is looked up, not re-sent).
Waits grow exponentially with full jitter, never shorter than a `Retry-After` the tool sent, and
are bounded by both an attempt count and a time budget: a wait that would overrun the budget
ends the retries at once instead of sleeping into it. Every retry is logged (`http.retry`) and
reported to the observers (metrics). `set_testing(True)` removes the waits, not the decisions.
A call made for a read that was given up (`connectors.cancel`) raises `Cancelled` before its
next attempt, and a retry's wait ends when the read is given up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
import tenacity

from connectors import cancel
from connectors.errors import OutcomeUnknown, RateLimited, TransientError

T = TypeVar("T")
log = structlog.get_logger("slm_sync.retry")

_testing = False
_global_observers: list[Callable[[RetryEvent], None]] = []


def observe_retries(observer: Callable[[RetryEvent], None]) -> None:
    """Register `observer` for every retry of every policy (the daemon's metrics)."""
    _global_observers.append(observer)


def set_testing(enabled: bool) -> None:
    """Tests: keep every retry decision but do not sleep."""
    global _testing
    _testing = enabled


@dataclass(frozen=True)
class RetryEvent:
    """One retry about to happen: for logs and metrics."""

    system: str
    what: str
    attempt: int
    wait: float
    status: int | None
    error: str


@dataclass
class RetryPolicy:
    """Attempt and time limits, backoff shape, and who hears about retries."""

    max_attempts: int = 6
    max_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    observers: list[Callable[[RetryEvent], None]] = field(default_factory=list)
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def call(self, fn: Callable[[], T], *, system: str, what: str) -> T:
        """Run `fn`, retrying transient failures under this policy; re-raises the last error."""
        planned: dict[int, float] = {}  # attempt -> wait; tenacity versions differ in whether
        started = time.monotonic()  # stop or wait is asked first, so both read one value

        def wait(state: tenacity.RetryCallState) -> float:
            if state.attempt_number not in planned:
                planned[state.attempt_number] = self._next_wait(state)
            return planned[state.attempt_number]

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            return time.monotonic() - started + wait(state) > self.max_seconds

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            event = RetryEvent(
                system=system,
                what=what,
                attempt=state.attempt_number,
                wait=round(wait(state), 3),
                status=getattr(error, "status", None),
                error=type(error).__name__,
            )
            log.warning("http.retry", **event.__dict__)
            for observer in (*self.observers, *_global_observers):
                observer(event)

        def attempt() -> T:
            cancel.check()  # a read given up (see `connectors.cancel`) sends nothing more
            return fn()

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retriable),
            stop=stop,
            wait=wait,
            sleep=lambda seconds: None if _testing else cancel.wait(seconds, self.sleep),
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _next_wait(self, state: tenacity.RetryCallState) -> float:
        """Full-jitter exponential backoff, at least the tool's Retry-After."""
        ceiling = min(self.max_wait, self.initial_wait * 2 ** (state.attempt_number - 1))
        wait = self.rng.uniform(self.initial_wait / 2, max(ceiling, self.initial_wait / 2))
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait


def _retriable(error: BaseException) -> bool:
    """Transient, and not a write whose outcome is unknown (re-sending could apply it twice)."""
    return isinstance(error, TransientError) and not isinstance(error, OutcomeUnknown)
