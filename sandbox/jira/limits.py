"""Jira Cloud's per-issue write limit: too many writes to one issue in a window answer 429.

Atlassian documents it beside the burst and quota limits: scope one issue, ``RateLimit-Reason:
jira-per-issue-on-write``, ``Retry-After`` in seconds; the client should space out writes to
that issue only. Each ``(count, seconds)`` window of the knob is a sliding window per issue.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from werkzeug.wrappers import Response

from sandbox.http import json_response
from sandbox.jira.realism import PER_ISSUE_REASON

__all__ = ["IssueWriteLimiter", "per_issue_limited"]


class IssueWriteLimiter:
    """Counts writes per issue; `admit` says how long to wait, or None if the write may go."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._writes: defaultdict[str, deque[float]] = defaultdict(deque)

    def admit(self, issue_key: str, windows: Sequence[tuple[int, float]]) -> float | None:
        if not windows:
            return None
        now = self.clock()
        writes = self._writes[issue_key]
        longest = max(seconds for _, seconds in windows)
        while writes and writes[0] <= now - longest:
            writes.popleft()
        waits = [self._wait(writes, now, count, seconds) for count, seconds in windows]
        wait = max(waits)
        if wait > 0:
            return wait
        writes.append(now)
        return None

    @staticmethod
    def _wait(writes: deque[float], now: float, count: int, seconds: float) -> float:
        recent = [t for t in writes if t > now - seconds]
        if len(recent) < count:
            return 0.0
        return recent[-count] + seconds - now

    def reset(self) -> None:
        self._writes.clear()


def per_issue_limited(issue_key: str, wait: float) -> Response:
    """Jira Cloud's 429 for the per-issue write limit."""
    retry_after = max(1, math.ceil(wait))
    reset = datetime.fromtimestamp(math.ceil(datetime.now(UTC).timestamp() + wait), UTC)
    return json_response(
        {"errorMessages": [f"Too many writes to issue {issue_key}; retry later."], "errors": {}},
        429,
        {
            "Retry-After": str(retry_after),
            "RateLimit-Reason": PER_ISSUE_REASON,
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
        },
    )
