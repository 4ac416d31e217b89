"""The pull reads the next page while it stores the current one, without changing what it sees:
pages arrive in order, a read error surfaces where its page would have been, and a pull that
stops early stops the reader too (it reads at most one page ahead)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from connectors import ConnectorError
from sync.pull import prefetched


def _pages(count: int, read: list[int], *, fail_at: int | None = None) -> Iterator[int]:
    for n in range(count):
        if n == fail_at:
            raise ConnectorError(f"page {n} could not be read")
        read.append(n)
        yield n


def test_pages_arrive_in_order_and_the_reader_runs_in_another_thread() -> None:
    threads: set[str] = set()

    def pages() -> Iterator[int]:
        for n in range(50):
            threads.add(threading.current_thread().name)
            yield n

    assert list(prefetched(pages())) == list(range(50))  # type: ignore[arg-type]
    assert threads == {"pull-prefetch"}


def test_a_read_error_is_raised_after_the_pages_before_it() -> None:
    seen: list[int] = []
    with pytest.raises(ConnectorError, match="page 3 could not be read"):
        for page in prefetched(_pages(10, [], fail_at=3)):  # type: ignore[arg-type]
            seen.append(page)  # type: ignore[arg-type]
    assert seen == [0, 1, 2]


def test_stopping_early_stops_the_reader_one_page_ahead_at_most() -> None:
    read: list[int] = []
    consumed = 0
    for _ in prefetched(_pages(1000, read)):  # type: ignore[arg-type]
        consumed += 1
        if consumed == 5:
            break
    assert not [t for t in threading.enumerate() if t.name == "pull-prefetch"]
    assert consumed <= len(read) <= consumed + 2
