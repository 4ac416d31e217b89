"""The harness both stand-ins run in: knobs, request counting and `/__sandbox/` introspection.

A stand-in (Jira or ServiceNow) is a `StandIn`: a name, a werkzeug `Map` of its routes, a
`dispatch` for matched routes, an `error` for routing failures in its own error shape, and
`created()` / `reset_state()` for introspection. `Harness(stand_in, knobs)` is the WSGI app that
wraps it; per request, in this order:

1. `/__sandbox/...` is answered directly (never delayed, limited, faulted or counted);
2. the request is counted under its method and route template (`GET /api/now/table/<table>`);
3. latency (fixed + jitter) is slept;
4. the rate limit of this stand-in answers 429 with the real tool's headers when exceeded;
5. a seeded fault may fire (only on the routes the spec's `only` names, if it names any):
   `reset` (TCP reset, no response), `5xx` (502/503/504 with an HTML body, like a proxy), `slow`
   (stall `slow_s`, then answer), `malformed` (a 2xx JSON body cut in half, after the request
   was processed: a create still happened), `short` (list endpoints drop rows from the page, as
   ACLs do: see `short_page()`), `429` (the stand-in's rate-limit answer, Retry-After 1 s,
   before the request is processed).

Introspection: GET `/__sandbox/requests` (counts), POST `/__sandbox/reset` (counters; with
`?state=true` also the stand-in's state), GET `/__sandbox/created` (what clients created),
GET / POST `/__sandbox/knobs` (read / change knobs; JSON as in `Knobs.update`, plus the stand-in's
own knobs under its name, e.g. `{"jira": {"time_zone": "America/Los_Angeles"}}`: see
`sandbox.jira.realism`).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox.http.knobs import (
    FaultSpec,
    KnobError,
    Knobs,
    RateLimit,
    parse_faults,
    parse_latency,
    parse_rate_limits,
)
from sandbox.http.server import RESET_CONNECTION, ServerThread

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "FaultSpec",
    "Harness",
    "KnobError",
    "Knobs",
    "RateLimit",
    "ServerThread",
    "StandIn",
    "json_response",
    "parse_faults",
    "parse_latency",
    "parse_rate_limits",
    "short_page",
]

SHORT_PAGE = "sandbox.short_page"
_FIVE_XX = {
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class StandIn(Protocol):
    name: str  # "jira" | "servicenow": selects the rate-limit header set and fault stream
    url_map: Map

    def dispatch(self, request: Request, endpoint: str, values: dict[str, Any]) -> Response: ...

    def error(self, request: Request, error: HTTPException) -> Response: ...

    def created(self) -> dict[str, Any]: ...

    def reset_state(self) -> None: ...


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response (no spaces: smaller and faster, like the real APIs)."""
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(data, status, headers, content_type="application/json;charset=UTF-8")


def short_page(request: Request) -> bool:
    """True if this list request drew the `short` fault: return fewer rows than asked for,
    although more follow (clients must stop on an empty page, not a short one)."""
    return bool(request.environ.get(SHORT_PAGE))


class _Window:
    """A fixed rate-limit window: `count` requests since `start`."""

    def __init__(self) -> None:
        self.start = 0.0
        self.count = 0


class Harness:
    """WSGI app wrapping a stand-in with knobs, counters and introspection routes."""

    def __init__(
        self,
        stand_in: StandIn,
        knobs: Knobs,
        rate_limited: Callable[[RateLimit, int, float], Response] | None = None,
    ) -> None:
        self.stand_in = stand_in
        self.knobs = knobs
        self._rate_limited = rate_limited or RATE_LIMIT_STYLES[stand_in.name]
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._window = _Window()
        self._generation = -1
        self._faults = random.Random(0)
        self._latency = random.Random(0)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/__sandbox/"):
            response = self._introspect(request)
        else:
            response = self._serve(request)
        return response(environ, start_response)

    def _serve(self, request: Request) -> Response:
        adapter = self.stand_in.url_map.bind_to_environ(request.environ)
        try:
            rule, values = adapter.match(return_rule=True)
        except HTTPException as error:
            self._count(request.method, "<unmatched>")
            return self.stand_in.error(request, error)
        self._count(request.method, rule.rule)
        fault, limited, delay = self._draw(request)
        if delay:
            time.sleep(delay)
        if limited is not None:
            return limited
        return self._with_fault(fault, request, rule, values)

    def _with_fault(
        self, fault: str | None, request: Request, rule: Rule, values: Mapping[str, Any]
    ) -> Response:
        if fault == "reset":
            request.environ[RESET_CONNECTION] = True
            return Response(b"", 200)
        if fault == "5xx":
            return _proxy_error(random.Random(self._faults.random()).choice(list(_FIVE_XX)))
        if fault == "429":
            return self._rate_limited(RateLimit(1, 1.0), 1, time.time() + 1)
        if fault == "slow":
            time.sleep(self.knobs.faults.slow_s if self.knobs.faults else 5.0)
        if fault == "short":
            request.environ[SHORT_PAGE] = True
        try:
            response = self.stand_in.dispatch(request, str(rule.endpoint), dict(values))
        except HTTPException as error:
            response = self.stand_in.error(request, error)
        if fault == "malformed" and response.status_code < 300 and response.is_json:
            data = response.get_data()
            response.set_data(data[: len(data) // 2])
        return response

    def _draw(self, request: Request) -> tuple[str | None, Response | None, float]:
        """Under the lock: restart on new knobs, draw fault and latency, check the rate limit."""
        knobs = self.knobs
        with self._lock:
            if self._generation != knobs.generation:
                self._restart(knobs)
            faults = knobs.faults
            fault = None
            if faults is not None and faults.applies(request.method, request.path, request.args):
                fault = _pick_fault(faults, self._faults.random())
            delay = (knobs.latency_ms + self._latency.random() * knobs.jitter_ms) / 1000
            limit = knobs.rate_limits.get(self.stand_in.name) or knobs.rate_limits.get("*")
            limited = self._check_rate(limit) if limit is not None else None
        return fault, limited, delay

    def _restart(self, knobs: Knobs) -> None:
        self._generation = knobs.generation
        seed = knobs.faults.seed if knobs.faults else 0
        self._faults = random.Random(f"{seed}:{self.stand_in.name}")
        self._latency = random.Random(f"latency:{seed}:{self.stand_in.name}")
        self._window = _Window()

    def _check_rate(self, limit: RateLimit) -> Response | None:
        now = time.time()
        window = self._window
        if now - window.start >= limit.period_s:
            window.start = math.floor(now / limit.period_s) * limit.period_s
            window.count = 0
        window.count += 1
        if window.count <= limit.requests:
            return None
        reset_at = window.start + limit.period_s
        return self._rate_limited(limit, max(1, math.ceil(reset_at - now)), reset_at)

    def _count(self, method: str, route: str) -> None:
        with self._lock:
            self._counts[f"{method} {route}"] += 1

    def _introspect(self, request: Request) -> Response:
        action = (request.method, request.path.removeprefix("/__sandbox/").strip("/"))
        if action == ("GET", "requests"):
            return json_response(self.requests())
        if action == ("POST", "reset"):
            self.reset(state=request.args.get("state", "false").lower() == "true")
            return json_response({"reset": True})
        if action == ("GET", "created"):
            return json_response(self.stand_in.created())
        if action == ("GET", "knobs"):
            return json_response(self.knobs.describe())
        if action == ("POST", "knobs"):
            try:
                changes = dict(request.get_json(force=True))
                own = changes.pop(self.stand_in.name, None)  # {"jira": {...}}: the stand-in's own
                if own is not None:
                    _own_knobs(self.stand_in).update(dict(own))
                self.knobs.update(changes)
            except (KnobError, ValueError, TypeError) as error:
                return json_response({"error": str(error)}, 400)
            return json_response(self.knobs.describe())
        return json_response({"error": f"no sandbox route {request.method} {request.path}"}, 404)

    def requests(self) -> dict[str, Any]:
        """Request counts: total, by method, and by "METHOD route-template"; a stand-in that
        runs requests inside one (ServiceNow's batch) adds them as `sub_requests` by
        "METHOD table" (a batch is one request, its items are not counted in `total`)."""
        with self._lock:
            counts = dict(self._counts)
        methods: Counter[str] = Counter()
        for key, count in counts.items():
            methods[key.split(" ", 1)[0]] += count
        answer = {"total": sum(counts.values()), "by_method": dict(methods), "by_route": counts}
        inner = getattr(self.stand_in, "sub_requests", None)
        if callable(inner):
            answer["sub_requests"] = inner()
        return answer

    def reset(self, state: bool = False) -> None:
        """Forget request counts (and rate windows, fault stream); with `state`, the data too."""
        with self._lock:
            self._counts.clear()
            self._generation = -1
        forget = getattr(self.stand_in, "reset_sub_requests", None)
        if callable(forget):
            forget()
        if state:
            self.stand_in.reset_state()


class _OwnKnobs(Protocol):
    def update(self, changes: Mapping[str, Any]) -> None: ...


def _own_knobs(stand_in: StandIn) -> _OwnKnobs:
    """A stand-in's own knobs (the Jira stand-in's `realism`), for `POST /__sandbox/knobs`."""
    own = getattr(stand_in, "realism", None)
    if own is None:
        raise KnobError(f"the {stand_in.name} stand-in has no knobs of its own")
    return cast(_OwnKnobs, own)


def _pick_fault(spec: FaultSpec, draw: float) -> str | None:
    for kind, rate in spec.rates.items():
        if draw < rate:
            return kind
        draw -= rate
    return None


def _proxy_error(status: int) -> Response:
    reason = _FIVE_XX[status]
    html = (
        f"<html><head><title>{status} {reason}</title></head><body>"
        f"<center><h1>{status} {reason}</h1></center><hr><center>nginx</center></body></html>"
    )
    return Response(html, status, content_type="text/html")


def servicenow_rate_limited(limit: RateLimit, retry_after: int, reset_at: float) -> Response:
    """ServiceNow's rate-limit answer (REST API rate limit rules)."""
    return json_response(
        {
            "error": {
                "message": "Rate limit exceeded",
                "detail": f"Exceeded rate limit of {limit.requests} requests "
                f"per {limit.period_s:g} seconds",
            },
            "status": "failure",
        },
        429,
        {
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(limit.requests),
            "X-RateLimit-Reset": str(math.ceil(reset_at)),
            "X-RateLimit-Rule": "6c8b7f6b1b3e2010a8d9a9c8cd4bcb8f",
        },
    )


def jira_rate_limited(limit: RateLimit, retry_after: int, reset_at: float) -> Response:
    """Jira Cloud's rate-limit answer (headers of the 2024+ rate limiting)."""
    reset = datetime.fromtimestamp(math.ceil(reset_at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json_response(
        {"errorMessages": ["Rate limit exceeded."], "errors": {}},
        429,
        {
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(limit.requests),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
            "RateLimit-Reason": "jira-quota-global-based",
        },
    )


RATE_LIMIT_STYLES: dict[str, Callable[[RateLimit, int, float], Response]] = {
    "servicenow": servicenow_rate_limited,
    "jira": jira_rate_limited,
}
