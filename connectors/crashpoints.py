"""Test-only crash points: kill the process (SIGKILL, no cleanup) at a named write boundary.

Inert unless BOTH `SLM_SYNC_TEST_HOOKS=1` and `SLM_SYNC_CRASH_AT=<boundary>[@n]` are set in the
environment (the n-th time the boundary is reached, default the first). The crash suite uses it
to prove that a kill at any boundary, followed by a restart, leaves exactly one ticket per key.

Boundaries: before_intent, after_intent, after_create, after_record, mid_bulk,
between_parent_and_subtasks, mid_cursor_commit, after_step (a chart / note / watcher call made,
not yet recorded done), after_upload (a chart uploaded, the description not yet pointed at it),
after_show (the description points at the new chart, not yet recorded, older files still there),
mid_source_state_save (the source's kept CMDB state written, its new version not yet committed).
"""

from __future__ import annotations

import os
import signal

BOUNDARIES = (
    "before_intent",
    "after_intent",
    "after_create",
    "after_record",
    "mid_bulk",
    "between_parent_and_subtasks",
    "mid_cursor_commit",
    "after_step",
    "after_upload",
    "after_show",
    "mid_source_state_save",
)
_seen: dict[str, int] = {}


def _armed() -> tuple[str, int] | None:
    if os.environ.get("SLM_SYNC_TEST_HOOKS") != "1":
        return None
    spec = os.environ.get("SLM_SYNC_CRASH_AT", "")
    if not spec:
        return None
    name, _, nth = spec.partition("@")
    return name, int(nth or "1")


def crash_point(name: str) -> None:
    """Die here if the environment armed this boundary (tests only; otherwise a no-op)."""
    armed = _armed()
    if armed is None or armed[0] != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)
