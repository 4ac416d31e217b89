"""A fault proxy on 127.0.0.1 in front of a stand-in: creates that land after the client gave up.

Real tools finish a create the client stopped waiting for (a slow bulk create, a stalled
proxy), and their search may not show it yet when the client looks. The sandbox's own `slow`
fault stalls every kind of request; this proxy targets creates only:

- `delay_s`: a create is held that long before it is forwarded (the client's read timeout
  fires first), then it lands upstream all the same; the late answer goes nowhere;
- `until_lookup`: a create is held until the next lookup (a JQL search, a ServiceNow list by
  `correlation_id`) has been answered, then it lands: the lookup right after a timeout
  proves nothing.

Everything else is forwarded as it comes. `creates` counts the create requests that arrived,
`landed` those forwarded upstream; `sent(text)` counts the create bodies that contained `text`
(an idempotency key, quoted as JSON writes it).

    with FaultProxy(sandbox.jira_url, delay_s=4) as proxy:
        settings.jira.url = proxy.url
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

import requests
from werkzeug.wrappers import Request, Response

from sandbox.http.server import ServerThread

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["FaultProxy"]

CREATE = re.compile(r"^/rest/api/(2|3|latest)/issue(/bulk)?$|^/api/now/table/[^/]+$")
LOOKUP = re.compile(r"^/rest/api/(2|3|latest)/search(/jql)?$")
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}
)


class FaultProxy:
    """Forwards to `upstream`, holding create requests as configured (see module docstring)."""

    def __init__(
        self,
        upstream: str,
        *,
        delay_s: float = 0.0,
        until_lookup: bool = False,
        hold_max_s: float = 30.0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay_s = delay_s
        self.until_lookup = until_lookup
        self.hold_max_s = hold_max_s
        self.creates = 0
        self.landed = 0
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        self._lookup = threading.Condition(self._lock)
        self._lookups = 0
        self._server = ServerThread(self)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> FaultProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def sent(self, key: str) -> int:
        """How many create requests carried `key` (as a JSON string)."""
        needle = f'"{key}"'.encode()
        with self._lock:
            return sum(1 for body in self.bodies if needle in body)

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until every create that arrived has landed upstream."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self.landed >= self.creates:
                    return
            time.sleep(0.02)
        raise TimeoutError(f"{self.creates - self.landed} held creates never landed")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.method == "POST" and CREATE.match(request.path):
            response = self._create(request)
        else:
            response = self._forward(request)
            if self._is_lookup(request):
                with self._lookup:
                    self._lookups += 1
                    self._lookup.notify_all()
        return response(environ, start_response)

    def _create(self, request: Request) -> Response:
        with self._lock:
            self.creates += 1
            self.bodies.append(request.get_data())
            seen = self._lookups
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.until_lookup:
            with self._lookup:
                self._lookup.wait_for(lambda: self._lookups > seen, timeout=self.hold_max_s)
        try:
            return self._forward(request)
        finally:
            with self._lock:
                self.landed += 1

    def _is_lookup(self, request: Request) -> bool:
        if LOOKUP.match(request.path):
            return True
        query = request.args.get("sysparm_query", "")
        return request.path.startswith("/api/now/table/") and "correlation_id" in query

    def _forward(self, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = requests.request(
            request.method,
            self.upstream + request.full_path.rstrip("?"),
            headers=headers,
            data=request.get_data(),
            timeout=60,
            allow_redirects=False,
        )
        kept = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
        kept = [(k, v) for k, v in kept if k.lower() != "content-encoding"]
        return Response(upstream.content, upstream.status_code, kept)
