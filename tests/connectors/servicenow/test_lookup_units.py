"""The lookup cache of `BatchLookup`: every id looked up, or the `kept` last looked up."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from connectors.servicenow.client import Record
from connectors.servicenow.lookup import BatchLookup

SYS_IDS = [f"{n:032x}" for n in range(1, 8)]


class _Counted(BatchLookup):
    """Answers every id without a request, and records which ids each batch asked for."""

    def __init__(self, **options: Any) -> None:
        super().__init__(
            client=None,
            guard=SimpleNamespace(concurrency=2),
            table="incident",
            fields=("sys_id",),
            **options,
        )  # type: ignore[arg-type]
        self.asked: list[str] = []

    def _batch(self, ids: Sequence[str]) -> dict[str, Record]:
        self.asked += ids
        return {i: {"sys_id": i} for i in ids}


def test_an_unbounded_lookup_asks_for_each_id_once() -> None:
    lookup = _Counted(batch_size=100)
    for sys_id in SYS_IDS:
        lookup.fetch([sys_id])
    assert lookup.fetch(SYS_IDS) == {i: {"sys_id": i} for i in SYS_IDS}
    assert lookup.asked == SYS_IDS


def test_a_kept_lookup_forgets_the_ids_looked_up_longest_ago() -> None:
    lookup = _Counted(batch_size=100, kept=3)
    first, second, third, fourth = SYS_IDS[:4]
    lookup.fetch([first, second, third])
    lookup.fetch([first])  # looked up again: the last looked up now
    lookup.fetch([fourth])  # the cache holds 3: `second` goes
    lookup.asked.clear()
    assert lookup.fetch([first, third, fourth]) == {
        i: {"sys_id": i} for i in (first, third, fourth)
    }
    assert lookup.asked == []
    assert lookup.fetch([second]) == {second: {"sys_id": second}}
    assert lookup.asked == [second]


def test_a_kept_lookup_returns_every_id_of_a_fetch_larger_than_it_keeps() -> None:
    lookup = _Counted(batch_size=2, kept=2)
    assert lookup.fetch(SYS_IDS) == {i: {"sys_id": i} for i in SYS_IDS}
    lookup.asked.clear()
    lookup.fetch(SYS_IDS[-2:])
    assert lookup.asked == []
