"""The pull reads the next page while it stores the current one, without changing what it sees:
pages arrive in order, a read error surfaces where its page would have been, and a pull that
stops early stops the reader too (it reads at most one page ahead). Several lanes (streams that
share no state) are read at the same time, each in its order. A lane busy with requests before
its first item is stopped at its next request and waited for. Overlapping pulls leave the
collection thresholds as they found them."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from functools import partial

import pytest

from connectors import ConnectorError, RetryPolicy, cancel
from mapping.allocation import GC_YOUNG, spaced_collections
from sync.pull import prefetched, read_ahead


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
    assert len(threads) == 1
    assert next(iter(threads)).startswith("pull-read-ahead")


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
    assert not [t for t in threading.enumerate() if t.name.startswith("pull-read-ahead")]
    assert consumed <= len(read) <= consumed + 2


def test_lanes_are_read_at_the_same_time_each_in_its_order() -> None:
    # Lane "a" cannot go past its first item until lane "b" has read all of its own: one
    # reader after the other would wait here (and fail on the timeout).
    b_done = threading.Event()

    def lane_a() -> Iterator[str]:
        yield "a0"
        assert b_done.wait(timeout=10), "lane b was not read while lane a waited"
        yield from ("a1", "a2")

    def lane_b() -> Iterator[str]:
        yield from ("b0", "b1")
        b_done.set()

    got = list(read_ahead([lane_a(), lane_b()], depth=2))
    assert sorted(got) == ["a0", "a1", "a2", "b0", "b1"]
    assert [x for x in got if x.startswith("a")] == ["a0", "a1", "a2"]
    assert [x for x in got if x.startswith("b")] == ["b0", "b1"]


def test_one_lanes_error_is_raised_and_every_reader_stops() -> None:
    endless = _pages(10**12, [])  # a lane that never ends by itself
    with pytest.raises(ConnectorError, match="page 2 could not be read"):
        for _ in read_ahead([endless, _pages(10, [], fail_at=2)], depth=2):  # type: ignore[list-item]
            pass
    assert not [t for t in threading.enumerate() if t.name.startswith("pull-read-ahead")]


def test_a_lane_busy_before_its_first_item_is_stopped_at_its_next_request_and_waited_for() -> None:
    """A lane that makes many requests before its first item (the CMDB walk) when another
    lane fails: its request in flight ends, it sends no other, and `read_ahead` raises only
    once that lane's thread ended (its state is no longer changed when the pull saves it)."""
    policy = RetryPolicy(sleep=lambda seconds: None)
    sent: list[int] = []
    given_up: list[bool] = []
    ended = threading.Event()

    def request(n: int) -> int:
        if n == 0:  # in flight until the read is given up
            flag = cancel.current()
            given_up.append(flag is not None and flag.wait(timeout=60))
        sent.append(n)
        return n

    def walk() -> Iterator[str]:
        try:
            for n in range(10**6):
                policy.call(partial(request, n), system="servicenow", what="walk")
            yield "walked"
        finally:
            ended.set()

    with pytest.raises(ConnectorError, match="page 0 could not be read"):
        for _ in read_ahead([walk(), _pages(10, [], fail_at=0)], depth=2):
            pass
    assert ended.is_set()
    assert not [t for t in threading.enumerate() if t.name.startswith("pull-read-ahead")]
    assert given_up == [True]
    assert sent == [0]


class _Stop(Exception):
    pass


def test_a_stop_while_no_item_comes_gives_up_the_busy_lane() -> None:
    """`on_wait` is called while the caller waits; what it raises (a stop) ends the reading:
    the lane busy with requests stops at its next one and is waited for."""
    policy = RetryPolicy(sleep=lambda seconds: None)
    sent: list[int] = []
    in_flight = threading.Event()
    ended = threading.Event()

    def request(n: int) -> int:
        if n == 0:
            in_flight.set()
            flag = cancel.current()
            assert flag is not None and flag.wait(timeout=60)
        sent.append(n)
        return n

    def walk() -> Iterator[str]:
        try:
            for n in range(10**6):
                policy.call(partial(request, n), system="servicenow", what="walk")
            yield "walked"
        finally:
            ended.set()

    def stop_once_busy() -> None:
        if in_flight.is_set():
            raise _Stop

    with pytest.raises(_Stop):
        for _ in read_ahead([walk()], on_wait=stop_once_busy):
            pass
    assert ended.is_set()
    assert not [t for t in threading.enumerate() if t.name.startswith("pull-read-ahead")]
    assert sent == [0]


def test_overlapping_pulls_leave_the_collection_thresholds_as_they_found_them() -> None:
    """Two pulls at once in one process (`mapping.allocation.spaced_collections`), ending in either
    order: the thresholds stay raised while either runs and are the original ones after."""
    original = gc.get_threshold()
    for first_ends_first in (True, False):
        first, second = spaced_collections(), spaced_collections()
        first.__enter__()
        second.__enter__()
        assert gc.get_threshold()[0] >= GC_YOUNG
        (first if first_ends_first else second).__exit__(None, None, None)
        assert gc.get_threshold()[0] >= GC_YOUNG  # the other still runs
        (second if first_ends_first else first).__exit__(None, None, None)
        assert gc.get_threshold() == original
