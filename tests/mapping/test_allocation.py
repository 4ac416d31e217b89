"""Cyclic garbage collection is spaced out while records are mapped in bulk
(`mapping.allocation`): whole-heap collections do not walk the entities mapped so far again and
again, and the process's collection settings are as they were once the last scope ends."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from mapping import load_mappings, map_records
from mapping.allocation import GC_YOUNG, spaced_collections


def task_sla_rows(count: int) -> list[dict[str, Any]]:
    """Raw task_sla rows as the Table API returns them, every one distinct."""
    return [
        {
            "sys_id": f"{n:032x}",
            "stage": "completed",
            "sla": f"{n % 60:032x}",
            "task": f"{n:031x}f",
            "task.number": f"INC{n + 10001:07d}",
            "task.business_service": f"{n % 12:032x}",
            "task.priority": "12345"[n % 5],
            "start_time": f"2025-03-{1 + n % 28:02d} 10:{n % 60:02d}:00",
            "end_time": f"2025-03-{1 + n % 28:02d} 12:{n % 60:02d}:00",
            "has_breached": "false" if n % 7 else "true",
            "duration": "1970-01-01 02:00:00",
        }
        for n in range(count)
    ]


@pytest.fixture
def whole_heap_collections() -> Iterator[list[int]]:
    """Counts the collections of the oldest generation while the test runs."""
    seen: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            seen.append(info["collected"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        yield seen
    finally:
        gc.callbacks.remove(count)


def test_mapping_many_records_walks_the_heap_at_most_once(
    whole_heap_collections: list[int],
) -> None:
    # 60,000 kept entities: with CPython's default thresholds the heap is walked again each
    # time it grew by a quarter (six to eight times here); spaced, at most once
    rows = task_sla_rows(60_000)
    before = gc.get_threshold()
    result = map_records(load_mappings("servicenow").entity("sla_record"), rows)
    assert len(result.entities) == 60_000 and not result.skipped
    assert len(whole_heap_collections) <= 1
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_scopes_nest_and_the_settings_come_back_even_after_an_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), spaced_collections():
        assert gc.get_threshold()[0] >= GC_YOUNG
        frozen = gc.get_freeze_count()
        assert frozen > 0  # the objects from before the scope are left out of collections
        with spaced_collections():  # inner: nothing frozen or saved again
            assert gc.get_freeze_count() == frozen
        assert gc.get_threshold()[0] >= GC_YOUNG  # the outer scope still runs
        raise RuntimeError("a failed pull")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
