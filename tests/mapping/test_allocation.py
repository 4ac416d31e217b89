"""Cyclic garbage collection is spaced out while records are mapped in bulk
(`mapping.allocation`): whole-heap collections do not walk the entities mapped so far again and
again, garbage frozen cycle after cycle is collected every few cycles, and the process's collection
settings are as they were once the last scope ends.

The counts run in a fresh interpreter: how often CPython walks the whole heap depends on how
big the heap already is, which in a test process depends on the tests that ran before."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mapping.engine
from mapping import load_mappings, map_records
from mapping.allocation import FREEZES_PER_WALK, GC_YOUNG, spaced_collections

ROOT = Path(__file__).resolve().parents[2]

MAPPING_RUN = """
import contextlib, gc, json, sys
import mapping.engine
from mapping import load_mappings, map_records
if sys.argv[1] == "unspaced":
    mapping.engine.spaced_collections = contextlib.nullcontext
rows = [
    {"sys_id": f"{n:032x}", "stage": "completed", "sla": f"{n % 60:032x}",
     "task": f"{n:031x}f", "task.number": f"INC{n + 10001:07d}",
     "task.business_service": f"{n % 12:032x}", "task.priority": "12345"[n % 5],
     "start_time": f"2025-03-{1 + n % 28:02d} 10:{n % 60:02d}:00",
     "end_time": f"2025-03-{1 + n % 28:02d} 12:{n % 60:02d}:00",
     "has_breached": "false" if n % 7 else "true", "duration": "1970-01-01 02:00:00"}
    for n in range(60_000)
]
entity = load_mappings("servicenow").entity("sla_record")
gc.collect()
walks = []
def count(phase, info):
    if phase == "stop" and info["generation"] == 2:
        walks.append(1)
gc.callbacks.append(count)
result = map_records(entity, rows)
print(json.dumps({"entities": len(result.entities), "walks": len(walks)}))
"""

# A daemon's cycles: each ends leaving one cyclic object (a chart's figure, an exception with its
# traceback) and then waits, allocating little, before the next cycle opens its scope.
CYCLES_RUN = """
import gc, json, sys, weakref
import mapping.allocation
from mapping.allocation import spaced_collections
freeze = sys.argv[1] != "unfrozen"
if sys.argv[1] == "never walked":
    mapping.allocation.FREEZES_PER_WALK = 10**9
class Figure:
    def __init__(self): self.canvas = {"figure": self, "pixels": bytearray(1000)}
forced = []
class Collections:  # `gc` as the scopes and collect_if_due see it: forced collections noted
    def collect(self, *args): forced.append(1); return gc.collect(*args)
    def __getattr__(self, name): return getattr(gc, name)
mapping.allocation.gc = Collections()
alive, due = [], 0
for cycle in range(20):
    with spaced_collections(freeze=freeze):
        kept = [[n] for n in range(100_000)]  # the cycle's build
        del kept
    figure = Figure()
    alive.append(weakref.ref(figure))
    del figure
    for _ in range(100):  # waiting for the next cycle
        [object() for _ in range(100)]
    if sys.argv[1] == "daemon":  # a daemon runs the due collection while it waits
        due += mapping.allocation.collect_if_due()
print(json.dumps({"alive": sum(ref() is not None for ref in alive), "due": due,
                  "forced": len(forced)}))
"""


def _run(script: str, mode: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), mode],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result: dict[str, int] = json.loads(done.stdout)
    return result


def test_mapping_many_records_walks_the_heap_at_most_once() -> None:
    # 60,000 kept entities: with CPython's default thresholds the heap is walked again each
    # time it grew by a quarter; spaced, at most once
    spaced, unspaced = _run(MAPPING_RUN, "spaced"), _run(MAPPING_RUN, "unspaced")
    assert spaced["entities"] == unspaced["entities"] == 60_000
    assert spaced["walks"] <= 1
    assert unspaced["walks"] >= 3  # what the spacing saves


def test_cycle_after_cycle_garbage_frozen_waits_ten_cycles_at_most() -> None:
    # A freeze held over every cycle froze the garbage left between cycles again and again,
    # and none of it was ever collected: a whole-heap collection before every tenth freeze
    # collects what the freezes caught
    # exactly: the figures of the last ten cycles (another period, or a collection before
    # every freeze after the tenth, leaves another count)
    walked = _run(CYCLES_RUN, "walked")
    assert walked["alive"] == FREEZES_PER_WALK and walked["forced"] == 1
    assert _run(CYCLES_RUN, "never walked")["alive"] >= 15  # the freezes kept nearly all
    assert _run(CYCLES_RUN, "unfrozen")["alive"] <= 2
    # a daemon collecting while it waits, after the tenth and the twentieth cycle: nothing
    # left, and no scope forced one of its own at a cycle's start
    assert _run(CYCLES_RUN, "daemon") == {"alive": 0, "due": 2, "forced": 2}


def test_map_records_runs_spaced(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original = mapping.engine.EntityMapping.apply

    def apply(self: mapping.engine.EntityMapping, record: dict[str, object]) -> object:
        seen.append(gc.get_threshold()[0])
        return original(self, record)

    monkeypatch.setattr(mapping.engine.EntityMapping, "apply", apply)
    before = gc.get_threshold()
    entity = load_mappings("servicenow").entity("sla_record")
    map_records(entity, [{"sys_id": "a1", "stage": "completed", "task": "t1"}])
    assert seen == [max(before[0], GC_YOUNG)]
    assert gc.get_threshold() == before


def test_scopes_nest_and_the_settings_come_back_even_after_an_error() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), spaced_collections():
        assert gc.get_threshold()[0] >= GC_YOUNG and gc.get_freeze_count() == 0
        with spaced_collections(freeze=True):  # the pull: objects from before it frozen
            frozen = gc.get_freeze_count()
            assert frozen > 0
            with spaced_collections(freeze=True):  # overlapping: nothing frozen again
                assert gc.get_freeze_count() == frozen
            assert gc.get_freeze_count() == frozen  # the outer freezing scope still runs
        assert gc.get_freeze_count() == 0  # unfrozen when the last freezing scope ended
        assert gc.get_threshold()[0] >= GC_YOUNG  # the outer scope still runs
        raise RuntimeError("a failed pull")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_freeze_made_by_other_code_is_left_alone() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()  # (objects freed meanwhile leave the count too)
        with spaced_collections(freeze=True):
            assert 0 < gc.get_freeze_count() <= frozen  # nothing frozen on top
        assert gc.get_freeze_count() > frozen // 2  # and not unfrozen by the scope
    finally:
        gc.unfreeze()
