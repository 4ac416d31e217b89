"""Every ServiceNow request goes through `Guard`: pacing, a concurrency cap, the shared retry
policy, and slowing down when the instance's rate-limit headers say the quota is nearly used.

Page reads go through `Guard.list`, which first looks for the page among the answers a batch
call fetched ahead (`ahead`, see `batch`): such a page costs no request and no pacing token,
the batch call took one."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from connectors import cancel
from connectors.errors import ConnectorError, RateLimited, write_failure
from connectors.http import monotonic_deadline, retry_after_seconds
from connectors.pacing import Pacer
from connectors.retry import RetryPolicy
from connectors.servicenow.batch import AheadReads, ListRequest
from connectors.servicenow.client import (
    SYSTEM,
    TableClient,
    TableResult,
    log,
    rate_limit_headers,
)


class Answer(Protocol):
    """What a guarded call returns: anything with the response's headers."""

    @property
    def headers(self) -> Mapping[str, str]: ...


T = TypeVar("T", bound=Answer)
# Below this many requests left in the window, wait for the window's reset before going on.
LOW_REMAINING = 2
IN_DOUBT = "look the record up by correlation_id before writing it again"


@dataclass
class Guard:
    """Runs calls paced, at most `concurrency` at a time, retried under `retry`."""

    pacer: Pacer
    retry: RetryPolicy
    concurrency: int = 2
    requests_made: int = 0
    ahead: AheadReads = field(default_factory=AheadReads)
    _slots: threading.BoundedSemaphore = field(init=False)
    _count_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.concurrency)

    def list(
        self, client: TableClient, request: ListRequest, *, what: str | None = None
    ) -> TableResult:
        """One page of `request`: fetched ahead in a batch if it was, else one guarded call."""
        kept = self.ahead.take(request)
        if kept is not None:
            return kept
        return self.call(
            lambda: client.list(
                request.table, query=request.query, fields=request.fields, limit=request.limit
            ),
            what=what or f"table {request.table}",
        )

    def call(self, send: Callable[[], T], *, what: str, repeatable: bool = True) -> T:
        """One logical request: paced, capped, retried; watches the rate-limit headers.

        A request that is not `repeatable` (an insert, a work note, an upload) is retried only
        when the instance certainly did not act on it (a 429, a connection never made): after
        a 5xx, a timeout, a reset or an unreadable answer it may have been done, so it raises
        `OutcomeUnknown` at once and the caller looks the record up first.
        """
        return self.retry.call(
            lambda: self._attempt(send, what, repeatable), system=SYSTEM, what=what
        )

    def _attempt(self, send: Callable[[], T], what: str, repeatable: bool) -> T:
        # The slot first, then the token: a token taken while waiting for a slot would be
        # spent late, and with more threads than slots (the pull's lanes, parallel lookups)
        # the requests would then leave in bursts above the pacing rate.
        with self._slots:
            self.pacer.acquire()
            cancel.check()  # given up while it waited for its slot (see `connectors.cancel`)
            with self._count_lock:
                self.requests_made += 1
            try:
                result = send()
            except RateLimited as error:
                if error.retry_after:
                    # Hold every request to this instance, not only the one that got the 429.
                    self.pacer.pause_until(
                        monotonic_deadline(error.retry_after), reason="429", system=SYSTEM
                    )
                raise
            except ConnectorError as error:
                failure = error if repeatable else write_failure(error, what=what, hint=IN_DOUBT)
                if failure is error:
                    raise
                raise failure from error
        self._slow_down(result.headers)
        return result

    def _slow_down(self, headers: Mapping[str, str]) -> None:
        remaining = headers.get("X-RateLimit-Remaining")
        if remaining is None or not remaining.strip().isdigit():
            return
        log.debug("servicenow.rate_limit", **rate_limit_headers(headers))
        if int(remaining) <= LOW_REMAINING:
            wait = retry_after_seconds({"X-RateLimit-Reset": headers.get("X-RateLimit-Reset", "")})
            if wait:
                self.pacer.pause_until(
                    monotonic_deadline(wait), reason="X-RateLimit-Remaining low", system=SYSTEM
                )
