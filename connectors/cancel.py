"""Stopping a read between requests: the pull's reader threads carry a cancel flag.

The pull reads streams in background threads (`sync.pull.read_ahead`); when it ends early (a
failure of another stream, a stop) it sets the flag of its readers and waits for them. Every
request of a connector checks the flag of the thread it runs in first (`check`, called by the
shared retry policy before each attempt) and a wait for a retry or for the pacer ends when the
flag is set (`wait`), so a reader in the middle of a long read (the CMDB walk, a lookup of many
batches) stops at its next request instead of reading on after the pull returned.

The flag travels in a context variable (`cancelled_by`): the reader threads run in a copy of
the context the flag was set in, and so do the pool threads a read starts (`carried`). Calls
made outside a reader (the main thread, a target's writes) carry no flag and are never stopped.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_flag: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "slm_sync_cancel", default=None
)


class Cancelled(BaseException):
    """The read this request belongs to was given up (the pull ended); nothing to handle: it
    derives from BaseException so that no `except Exception` along the way takes it for a
    failure of one record and reads on."""


def current() -> threading.Event | None:
    """The cancel flag of the read running in this thread, if any."""
    return _flag.get()


@contextmanager
def cancelled_by(flag: threading.Event) -> Iterator[None]:
    """Calls made inside (and in contexts copied from inside) stop once `flag` is set."""
    token = _flag.set(flag)
    try:
        yield
    finally:
        _flag.reset(token)


def check() -> None:
    """Raise `Cancelled` if the read this thread works for was given up."""
    flag = _flag.get()
    if flag is not None and flag.is_set():
        raise Cancelled("the read was given up: the pull it belonged to ended")


def wait(seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Sleep `seconds` (with `sleep`), ended early by the cancel flag if `sleep` is the real
    one; then `check`."""
    flag = _flag.get()
    if flag is not None and sleep is time.sleep:
        flag.wait(seconds)
    else:
        sleep(seconds)
    check()


def carried(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn` to run in another thread (a pool's) under this thread's cancel flag."""
    flag = _flag.get()
    if flag is None:
        return fn

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        token = _flag.set(flag)
        try:
            return fn(*args, **kwargs)
        finally:
            _flag.reset(token)

    return run
