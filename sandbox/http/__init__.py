"""The HTTP harness both stand-ins run in: a keep-alive WSGI server on 127.0.0.1 (`server`), the
run-time knobs (`knobs`: latency, rate limits, faults optionally limited to routes, index lag)
and the WSGI wrapper that applies them, counts requests and serves `/__sandbox/` introspection
(`harness`).

Imports nothing of ours outside `sandbox.http`; the Jira and ServiceNow stand-ins import it.
"""

from __future__ import annotations

from sandbox.http.harness import Harness, StandIn, json_response, short_page
from sandbox.http.knobs import (
    FaultSpec,
    KnobError,
    Knobs,
    RateLimit,
    RouteFilter,
    parse_faults,
    parse_latency,
    parse_rate_limits,
)
from sandbox.http.server import ServerThread

__all__ = [
    "FaultSpec",
    "Harness",
    "KnobError",
    "Knobs",
    "RateLimit",
    "RouteFilter",
    "ServerThread",
    "StandIn",
    "json_response",
    "parse_faults",
    "parse_latency",
    "parse_rate_limits",
    "short_page",
]
