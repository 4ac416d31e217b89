"""Records fetched by sys_id in batches (`sys_idIN...`), cached for the connector's lifetime.

Used for people (owners named by services and components), the incidents behind CSAT answers,
and the CIs a dependency walk reaches. Batches are read in parallel up to the guard's
concurrency; ids that are not sys_ids are never sent (they are reported by the caller).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from connectors.servicenow import query
from connectors.servicenow.client import Record, TableClient
from connectors.servicenow.guard import Guard


@dataclass
class BatchLookup:
    """`fetch(ids)` -> {sys_id: record} from one table, with a cache."""

    client: TableClient
    guard: Guard
    table: str
    fields: tuple[str, ...]
    batch_size: int = 100
    _cache: dict[str, Record | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fetch(self, ids: Iterable[str]) -> dict[str, Record]:
        """The records of `ids` that exist (and that the user may read)."""
        wanted = list(dict.fromkeys(i for i in ids if i and query.SYS_ID.match(i)))
        with self._lock:
            missing = [i for i in wanted if i not in self._cache]
        batches = [
            missing[start : start + self.batch_size]
            for start in range(0, len(missing), self.batch_size)
        ]
        if len(batches) > 1:
            with ThreadPoolExecutor(max_workers=self.guard.concurrency) as pool:
                results = list(pool.map(self._batch, batches))
        else:
            results = [self._batch(batch) for batch in batches]
        with self._lock:
            for batch, found in zip(batches, results, strict=True):
                for sys_id in batch:
                    self._cache[sys_id] = found.get(sys_id)
            return {i: r for i in wanted if (r := self._cache.get(i)) is not None}

    def _batch(self, ids: Sequence[str]) -> dict[str, Record]:
        result = self.guard.call(
            lambda: self.client.list(
                self.table,
                query=query.sys_ids_in("sys_id", ids),
                fields=self.fields,
                limit=len(ids),
            ),
            what=f"table {self.table}",
        )
        return {row["sys_id"]: row for row in result.records if isinstance(row.get("sys_id"), str)}

    def forget(self) -> None:
        """Drop the cache (a full resync reads everything again)."""
        with self._lock:
            self._cache.clear()
