"""A read given up stops at its next request (`connectors.cancel`): the retry policy sends no
further attempt and ends its wait, the pacer ends its wait, and the flag reaches the pool
threads a read starts; calls outside a cancellable read are never stopped."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from connectors import Pacer, RetryPolicy, TransientError, cancel


def _policy(slept: list[float]) -> RetryPolicy:
    return RetryPolicy(sleep=slept.append, rng=random.Random(1))


def test_without_a_flag_calls_run_as_before() -> None:
    calls: list[int] = []

    def send() -> str:
        calls.append(1)
        return "ok"

    assert cancel.current() is None
    cancel.check()
    assert _policy([]).call(send, system="x", what="y") == "ok"
    assert calls == [1]


def test_a_given_up_read_sends_nothing() -> None:
    calls: list[int] = []
    flag = threading.Event()
    flag.set()
    with cancel.cancelled_by(flag), pytest.raises(cancel.Cancelled):
        _policy([]).call(lambda: calls.append(1), system="x", what="y")
    assert calls == []


def test_a_read_given_up_while_its_request_failed_is_not_retried() -> None:
    """A 503 comes back after the pull gave the read up: no retry is sent."""
    calls: list[int] = []
    slept: list[float] = []
    flag = threading.Event()

    def send() -> str:
        calls.append(1)
        flag.set()  # the pull ends while this request is in flight
        raise TransientError("503", system="x", status=503)

    with cancel.cancelled_by(flag), pytest.raises(cancel.Cancelled):
        _policy(slept).call(send, system="x", what="y")
    assert calls == [1]


def test_a_real_wait_ends_when_the_read_is_given_up() -> None:
    """An hour's retry wait (time.sleep) ends once the flag is set, with `Cancelled`."""
    flag = threading.Event()
    outcome: list[BaseException] = []

    def wait() -> None:
        with cancel.cancelled_by(flag):
            try:
                cancel.wait(3600.0)
            except cancel.Cancelled as error:
                outcome.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    flag.set()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert len(outcome) == 1


def test_the_pacer_stops_waiting_for_a_token_of_a_read_given_up() -> None:
    pacer = Pacer(rate=0.001, burst=1)  # the next token in 1000 s
    pacer.acquire()
    flag = threading.Event()
    flag.set()
    with cancel.cancelled_by(flag), pytest.raises(cancel.Cancelled):
        pacer.acquire()


def test_pool_threads_started_by_a_read_carry_its_flag() -> None:
    flag = threading.Event()
    flag.set()
    with cancel.cancelled_by(flag), ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(lambda n: cancel.current(), range(2))) == [None, None]

        def check(n: int) -> None:
            cancel.check()

        with pytest.raises(cancel.Cancelled):
            list(pool.map(cancel.carried(check), range(4)))
        # the pool's threads do not keep the flag for whatever they run next
        assert list(pool.map(lambda n: cancel.current(), range(2))) == [None, None]
