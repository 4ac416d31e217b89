"""Rate limit for rejection log lines: one per source and outcome per window, the rest counted.

A flood of forged or replayed requests must not flood the log. Every rejection is still
counted in /metrics (`slm_sync_webhook_rejections_total`); the log keeps one line per
(source, outcome) per window, and the next line says how many were held back since.
The keys are a fixed, small set (two sources, a dozen outcomes), so memory stays bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass
class _Slot:
    logged_at: float
    suppressed: int = 0


class LogThrottle:
    """Decides which rejection gets a log line; counts the ones it holds back."""

    def __init__(
        self, clock: Callable[[], float], *, window_seconds: float = WINDOW_SECONDS
    ) -> None:
        self.clock = clock
        self.window_seconds = window_seconds
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._lock = threading.Lock()

    def admit(self, source: str, outcome: str) -> int | None:
        """None to stay quiet; otherwise log now, with this many held back since the last line."""
        now = self.clock()
        with self._lock:
            slot = self._slots.get((source, outcome))
            # A clock stepped backwards (NTP) opens the window rather than closing it for good.
            if slot is None or not 0 <= now - slot.logged_at < self.window_seconds:
                self._slots[(source, outcome)] = _Slot(logged_at=now)
                return 0 if slot is None else slot.suppressed
            slot.suppressed += 1
            return None
