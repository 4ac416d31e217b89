"""Pacing: a token bucket per target system, and a shared pause when the tool says "slow down".

Every request takes a token first, and no more than `rate` requests leave in any one second:
tools count requests in fixed windows (the stand-ins per second, ServiceNow's rate limit rules
per hour), and a bucket full after a pause (`burst` tokens) let its burst go on top of a full
second's worth at the rate, which such a window answers with a 429 (and a second's pause for
every request to that system). A rate-limit answer (quota reached, `X-RateLimit-Remaining`
near zero) pauses *all* requests to that system until the given time, not just the one that got
the 429, so a burst of parallel calls does not burn the quota further.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from connectors import cancel

log = structlog.get_logger("slm_sync.pacing")
_EPSILON = 1e-9


@dataclass
class Pacer:
    """At most `rate` requests per second on average, bursts of up to `burst`, and never more
    than N = `rate` x `window` (rounded down, at least one) in any N / `rate` seconds (the
    window itself for a whole N: 20 in any second at 20/s; 1 in any 2/3 s at 1.5/s)."""

    rate: float
    burst: int = 1
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    window: float = 1.0
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)
    _paused_until: float = field(init=False, default=0.0)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _sent: deque[float] = field(init=False)  # the last rate x window requests' start times

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._stamp = self.clock()
        self._sent = deque(maxlen=max(1, math.floor(self.rate * self.window + _EPSILON)))

    def acquire(self) -> float:
        """Wait for a token (and any pause); returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                delay = max(0.0, self._paused_until - now)
                if delay == 0.0:
                    self._refill(now)
                    delay = self._window_wait(now)
                if delay == 0.0:
                    if self._tokens >= 1.0 - _EPSILON:  # float refills land a hair short
                        self._tokens = max(0.0, self._tokens - 1.0)
                        self._sent.append(now)
                        return waited
                    delay = (1.0 - self._tokens) / self.rate
            cancel.wait(delay, self.sleep)  # a read given up stops waiting for its token
            waited += delay

    def pause_until(self, monotonic_deadline: float, *, reason: str, system: str) -> None:
        """Hold every request until `monotonic_deadline` (a quota or reset time from the tool)."""
        with self._lock:
            if monotonic_deadline > self._paused_until:
                self._paused_until = monotonic_deadline
                log.warning(
                    "http.paused",
                    system=system,
                    reason=reason,
                    seconds=round(monotonic_deadline - self.clock(), 3),
                )

    def _window_wait(self, now: float) -> float:
        """Seconds until one more request keeps the last `window` seconds within the rate."""
        sent = self._sent
        if len(sent) < (sent.maxlen or 1):
            return 0.0
        return max(0.0, sent[0] + len(sent) / self.rate - now)

    def _refill(self, now: float) -> None:
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
