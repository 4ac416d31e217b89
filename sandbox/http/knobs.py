"""Run-time knobs of the sandbox: latency, rate limits, fault injection and search index lag.

The CLI and `POST /__sandbox/knobs` use the same spec strings:

- latency: `"40"` (fixed ms) or `"40+20"` (fixed + uniform jitter, ms);
- rate limit: `"servicenow=20/1s,jira=10/1s"`; a bare `"20/1s"` applies to both stand-ins; the
  period takes `ms`, `s` or `m`;
- faults: `"5xx=0.05,slow=0.01,reset=0.01,malformed=0.01,short=0.2,429=0.1,seed=3,slow_s=5"`;
  each kind is a probability per request (at most one fault per request), `seed` makes the
  sequence reproducible, `slow_s` is how long a slow response stalls (past the client's timeout);
  `only` limits the faults to some routes: `only=/rest/api/3/user/search` (that exact path),
  `only=/rest/api/3/search*` (a path prefix), `only=POST /rest/api/3/issue/bulk` (one method),
  `only=/rest/api/3/user/search?query=ann@example.com` (also these query parameters), several
  joined by `|`. Requests outside `only` draw no fault.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

FAULT_KINDS = ("reset", "5xx", "slow", "malformed", "short", "429")
_PERIOD_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*(ms|s|m)\s*$")


class KnobError(ValueError):
    """A knob spec string or value could not be understood; the message names it."""


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` per fixed window of `period_s` seconds."""

    requests: int
    period_s: float


@dataclass(frozen=True)
class RouteFilter:
    """Requests a fault may hit: a path (exact, or a prefix if `prefix`), any or one method,
    and query parameters the request must carry with these values."""

    path: str
    prefix: bool = False
    method: str | None = None
    query: tuple[tuple[str, str], ...] = ()

    def matches(self, method: str, path: str, args: Mapping[str, str]) -> bool:
        if self.method is not None and method.upper() != self.method:
            return False
        if any(args.get(name) != value for name, value in self.query):
            return False
        return path.startswith(self.path) if self.prefix else path == self.path

    def __str__(self) -> str:
        text = self.path + ("*" if self.prefix else "")
        if self.query:
            text += "?" + "&".join(f"{name}={value}" for name, value in self.query)
        return f"{self.method} {text}" if self.method else text


@dataclass(frozen=True)
class FaultSpec:
    rates: Mapping[str, float]
    seed: int = 0
    slow_s: float = 5.0
    only: tuple[RouteFilter, ...] = ()

    def applies(self, method: str, path: str, args: Mapping[str, str]) -> bool:
        """Whether a request may draw a fault: always, unless `only` names other routes."""
        return not self.only or any(route.matches(method, path, args) for route in self.only)


@dataclass
class Knobs:
    """Mutable at run time; `generation` changes on every update so harnesses restart windows."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limits: dict[str, RateLimit] = field(default_factory=dict)
    faults: FaultSpec | None = None
    index_lag_ms: float = 300.0
    rejected_password: str = "wrong-password"
    # ServiceNow: glide.invalid_query.returns_no_rows (a query naming an unknown field matches
    # no row instead of dropping the condition), and whether stock tables serve `u_` fields.
    invalid_query_returns_no_rows: bool = False
    servicenow_custom_fields: bool = False
    # ServiceNow: tables whose read ACL the integration user lacks (403 "Failed API level ACL
    # Validation", as an instance answers), e.g. {"sys_journal_field"}.
    servicenow_denied_tables: frozenset[str] = frozenset()
    # ServiceNow REST Batch API (/api/now/v1/batch): served or not (404, an older release);
    # the per-item response size limit (glide.rest.batch.max.outputSize, 10 MB) and the batch
    # transaction's time limit (30 s), past which the rest of the batch is "unserviced"; and
    # the time each item is taken to run (added to the measured time, never slept).
    servicenow_batch: bool = True
    servicenow_batch_output_bytes: int = 10 * 1024 * 1024
    servicenow_batch_timeout_ms: float = 30_000.0
    servicenow_batch_item_ms: float = 0.0
    generation: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a JSON object of changes (keys: latency_ms, jitter_ms, latency, rate_limit,
        faults, index_lag_ms, rejected_password, the servicenow_ ones); spec strings as in the
        module docstring."""
        unknown = set(changes) - {
            "latency_ms", "jitter_ms", "latency", "rate_limit", "faults", "index_lag_ms",
            "rejected_password", "invalid_query_returns_no_rows", "servicenow_custom_fields",
            "servicenow_denied_tables", "servicenow_batch", "servicenow_batch_output_bytes",
            "servicenow_batch_timeout_ms", "servicenow_batch_item_ms",
        }  # fmt: skip
        if unknown:
            raise KnobError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        with self.lock:
            if "latency" in changes:
                self.latency_ms, self.jitter_ms = parse_latency(str(changes["latency"]))
            self.latency_ms = float(changes.get("latency_ms", self.latency_ms))
            self.jitter_ms = float(changes.get("jitter_ms", self.jitter_ms))
            if "rate_limit" in changes:
                self.rate_limits = parse_rate_limits(changes["rate_limit"])
            if "faults" in changes:
                self.faults = parse_faults(changes["faults"])
            self.index_lag_ms = float(changes.get("index_lag_ms", self.index_lag_ms))
            self.rejected_password = str(changes.get("rejected_password", self.rejected_password))
            for flag in (
                "invalid_query_returns_no_rows",
                "servicenow_custom_fields",
                "servicenow_batch",
            ):
                if flag in changes:
                    setattr(self, flag, _flag(flag, changes[flag]))
            if "servicenow_denied_tables" in changes:
                self.servicenow_denied_tables = _tables(changes["servicenow_denied_tables"])
            self.servicenow_batch_output_bytes = int(
                changes.get("servicenow_batch_output_bytes", self.servicenow_batch_output_bytes)
            )
            for limit in ("servicenow_batch_timeout_ms", "servicenow_batch_item_ms"):
                setattr(self, limit, float(changes.get(limit, getattr(self, limit))))
            self.generation += 1

    def describe(self) -> dict[str, Any]:
        """The knobs as JSON, for GET /__sandbox/knobs."""
        return {
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "rate_limit": {
                name: f"{limit.requests}/{limit.period_s:g}s"
                for name, limit in self.rate_limits.items()
            },
            "faults": None if self.faults is None else _describe_faults(self.faults),
            "index_lag_ms": self.index_lag_ms,
            "invalid_query_returns_no_rows": self.invalid_query_returns_no_rows,
            "servicenow_custom_fields": self.servicenow_custom_fields,
            "servicenow_denied_tables": sorted(self.servicenow_denied_tables),
            "servicenow_batch": self.servicenow_batch,
            "servicenow_batch_output_bytes": self.servicenow_batch_output_bytes,
            "servicenow_batch_timeout_ms": self.servicenow_batch_timeout_ms,
            "servicenow_batch_item_ms": self.servicenow_batch_item_ms,
        }


def _tables(value: Any) -> frozenset[str]:
    """A list of table names, or one string of them joined by commas."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple | set | frozenset) or not all(
        isinstance(n, str) for n in names
    ):
        raise KnobError(f"servicenow_denied_tables {value!r}: expected table names")
    return frozenset(n.strip() for n in names if n.strip())


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise KnobError(f"{name} {value!r}: expected true or false")


def _describe_faults(faults: FaultSpec) -> dict[str, Any]:
    described: dict[str, Any] = {**faults.rates, "seed": faults.seed, "slow_s": faults.slow_s}
    if faults.only:
        described["only"] = [str(route) for route in faults.only]
    return described


def parse_latency(spec: str) -> tuple[float, float]:
    """`"40"` -> (40, 0); `"40+20"` -> (40, 20)."""
    fixed, _, jitter = spec.partition("+")
    try:
        return float(fixed or 0), float(jitter or 0)
    except ValueError:
        raise KnobError(f"latency {spec!r}: expected '<ms>' or '<ms>+<jitter ms>'") from None


def parse_rate_limits(spec: str | None) -> dict[str, RateLimit]:
    """`"servicenow=20/1s,jira=10/1s"` -> per stand-in limits; `"*"` names both."""
    limits: dict[str, RateLimit] = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        name, _, value = part.rpartition("=")
        match = _RATE_RE.match(value)
        if match is None:
            raise KnobError(f"rate limit {part!r}: expected '[name=]<count>/<period>(ms|s|m)'")
        period = float(match.group(2) or 1) * _PERIOD_UNITS[match.group(3)]
        limits[name.strip() or "*"] = RateLimit(int(match.group(1)), period)
    return limits


def parse_faults(spec: str | None) -> FaultSpec | None:
    """`"5xx=0.05,short=0.2,seed=3,only=/rest/api/3/user/search"` -> FaultSpec; empty -> None."""
    rates: dict[str, float] = {}
    seed, slow_s = 0, 5.0
    only: tuple[RouteFilter, ...] = ()
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        key, _, value = part.partition("=")
        try:
            if key == "seed":
                seed = int(value)
            elif key == "slow_s":
                slow_s = float(value)
            elif key == "only":
                only = parse_routes(value)
            elif key in FAULT_KINDS:
                rates[key] = float(value)
            else:
                raise KnobError(f"fault {key!r}: known kinds are {', '.join(FAULT_KINDS)}")
        except ValueError as error:
            if isinstance(error, KnobError):
                raise
            raise KnobError(f"fault {part!r}: expected '<kind>=<probability>'") from None
    if sum(rates.values()) > 1:
        raise KnobError(f"faults {spec!r}: probabilities add up to more than 1")
    return FaultSpec(rates, seed, slow_s, only) if rates or spec else None


def parse_routes(spec: str) -> tuple[RouteFilter, ...]:
    """`"POST /rest/api/3/issue/bulk|/rest/api/3/search*|/x?a=b"` -> route filters."""
    routes: list[RouteFilter] = []
    for part in filter(None, (p.strip() for p in spec.split("|"))):
        method, _, target = part.rpartition(" ")
        path, _, query = target.partition("?")
        if not path.startswith("/") or (method and not method.isalpha()):
            raise KnobError(f"fault route {part!r}: expected '[METHOD ]/path[*][?name=value&...]'")
        prefix = path.endswith("*")
        pairs = tuple(parse_qsl(query, keep_blank_values=True))
        routes.append(RouteFilter(path.rstrip("*"), prefix, method.upper() or None, pairs))
    if not routes:
        raise KnobError("fault 'only=': name at least one route, e.g. only=/rest/api/3/user/search")
    return tuple(routes)
