"""Records fetched by sys_id in batches (`sys_idIN...`), cached for the connector's lifetime
(all of them, or the `kept` last looked up).

Used for people (owners named by services and components), the incidents behind CSAT answers,
and the CIs a dependency walk reaches. Batches are read in parallel up to the guard's
concurrency; ids that are not sys_ids are never sent (they are reported by the caller).

A page may come back short although rows follow (ACLs hide rows after the instance applied the
limit), so a batch that did not bring every id it asked for reads on after its last sys_id
until an empty page (`read_by_id`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from connectors import cancel
from connectors.servicenow import query
from connectors.servicenow.client import Record, TableClient
from connectors.servicenow.guard import Guard


@dataclass
class BatchLookup:
    """`fetch(ids)` -> {sys_id: record} from one table, with a cache.

    `kept`: cache at most this many ids, those looked up last (None: every id ever looked up).
    The incidents behind CSAT answers are one per answer: an unbounded cache grew with every
    answer read (126,000 rows, some 65 MB, in a cold sync of a million SLA records) and never
    shrank in a daemon; what is asked again is the overlap a read repeats behind its cursor."""

    client: TableClient
    guard: Guard
    table: str
    fields: tuple[str, ...]
    batch_size: int = 100
    kept: int | None = None
    _cache: dict[str, Record | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fetch(self, ids: Iterable[str]) -> dict[str, Record]:
        """The records of `ids` that exist (and that the user may read)."""
        wanted = list(dict.fromkeys(i for i in ids if i and query.SYS_ID.match(i)))
        with self._lock:
            missing = [i for i in wanted if i not in self._cache]
            if self.kept is not None:  # the ids found are the last looked up now
                for sys_id in wanted:
                    if sys_id in self._cache:
                        self._cache[sys_id] = self._cache.pop(sys_id)
        batches = [
            missing[start : start + self.batch_size]
            for start in range(0, len(missing), self.batch_size)
        ]
        if len(batches) > 1:
            with ThreadPoolExecutor(max_workers=self.guard.concurrency) as pool:
                results = list(pool.map(cancel.carried(self._batch), batches))
        else:
            results = [self._batch(batch) for batch in batches]
        with self._lock:
            for batch, found in zip(batches, results, strict=True):
                for sys_id in batch:
                    self._cache[sys_id] = found.get(sys_id)
            records = {i: r for i in wanted if (r := self._cache.get(i)) is not None}
            self._forget_oldest()
            return records

    def _batch(self, ids: Sequence[str]) -> dict[str, Record]:
        rows = read_by_id(
            self.client,
            self.guard,
            self.table,
            query.sys_ids_in("sys_id", ids),
            self.fields,
            len(ids),
            complete=lambda found: len(found) >= len(ids),
        )
        return {row["sys_id"]: row for row in rows}

    def preload(self, records: dict[str, Record]) -> None:
        """Take records known from before (a restart's kept state) into the cache."""
        with self._lock:
            self._cache.update(records)
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        """Drop the ids looked up longest ago beyond `kept` (the cache is in lookup order)."""
        if self.kept is None:
            return
        excess = len(self._cache) - self.kept
        for sys_id in list(itertools.islice(self._cache, max(excess, 0))):
            del self._cache[sys_id]

    def forget(self) -> None:
        """Drop the cache (a full resync reads everything again)."""
        with self._lock:
            self._cache.clear()


def read_by_id(
    client: TableClient,
    guard: Guard,
    table: str,
    condition: str,
    fields: Sequence[str],
    limit: int,
    complete: Callable[[list[Record]], bool] = lambda _: False,
) -> list[Record]:
    """Every row matching `condition`, in sys_id order, page after page until an empty page
    (or until `complete(rows so far)` says nothing more can come)."""
    rows: list[Record] = []
    last = ""
    while True:
        after = f"sys_id>{query.sys_id(last)}" if last else ""
        result = guard.call(
            lambda a=after: client.list(  # type: ignore[misc]
                table,
                query=query.conjoin([condition, a, "ORDERBYsys_id"]),
                fields=fields,
                limit=limit,
            ),
            what=f"table {table}",
        )
        page = [r for r in result.records if isinstance(r.get("sys_id"), str)]
        if not page:
            return rows
        rows += page
        if complete(rows) or not query.SYS_ID.match(page[-1]["sys_id"]):
            return rows
        last = page[-1]["sys_id"]
