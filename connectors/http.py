"""The HTTP seam shared by all connectors: sessions with timeouts and TLS, status -> error.

Status handling is a lookup table (which statuses are transient, which fatal) rather than `if`
chains in each connector; each connector adds its own wording (which permission, which table).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum

import requests
import structlog
import urllib3.exceptions

from config import HttpSettings
from connectors.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    RateLimited,
    RequestRejected,
    TransientError,
)


class Action(Enum):
    """What a status code means for the caller."""

    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    REJECTED = "rejected"
    FAIL = "fail"


STATUS_ACTIONS: Mapping[int, Action] = {
    400: Action.REJECTED,
    401: Action.AUTH,
    403: Action.AUTH,
    404: Action.REJECTED,
    409: Action.REJECTED,
    410: Action.REJECTED,
    413: Action.REJECTED,
    422: Action.REJECTED,
    429: Action.RATE_LIMITED,
    502: Action.RETRY,
    503: Action.RETRY,
    504: Action.RETRY,
}


def action_for(status: int) -> Action:
    """The action for an HTTP status (2xx/3xx ok; unknown 4xx rejected; other 5xx fail)."""
    if status < 400:
        return Action.OK
    return STATUS_ACTIONS.get(status, Action.REJECTED if status < 500 else Action.FAIL)


log = structlog.get_logger("slm_sync.http")

CallObserver = Callable[[str, int], None]
_call_observers: list[CallObserver] = []


def observe_calls(observer: CallObserver) -> None:
    """Register `observer(system, status)` for every HTTP response of an instrumented session."""
    _call_observers.append(observer)


def instrument(session: requests.Session, system: str) -> requests.Session:
    """Report every response of `session` to the call observers (metrics, benchmarks)."""

    def _hook(response: requests.Response, *args: object, **kwargs: object) -> None:
        for observer in _call_observers:
            observer(system, response.status_code)

    session.hooks["response"].append(_hook)
    return session


def tls_verify(http: HttpSettings) -> bool | str:
    """What `requests` should verify with: a CA bundle, True, or (warned about) False."""
    if http.ca_bundle:
        return str(http.ca_bundle)
    if not http.verify_tls:
        log.warning(
            "http.tls_verification_off",
            hint="http.verify_tls is false: anyone on the network path can read the credentials; "
            "set http.ca_bundle for a private CA instead",
        )
    return http.verify_tls


def new_session(http: HttpSettings, *, user_agent: str = "slm-sync") -> requests.Session:
    """A session with TLS verification as configured (on by default) and a custom CA bundle."""
    session = requests.Session()
    session.verify = tls_verify(http)
    session.headers["User-Agent"] = user_agent
    session.headers["Accept"] = "application/json"
    return session


def timeouts(http: HttpSettings) -> tuple[float, float]:
    """(connect, read) timeouts: every request passes them, none waits forever."""
    return (http.connect_timeout, http.read_timeout)


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date), else from `X-RateLimit-Reset`.

    ServiceNow sends the reset as epoch seconds, Jira Cloud as an ISO 8601 timestamp.
    """
    now = now or datetime.now(UTC)
    value = headers.get("Retry-After")
    if value:
        if value.strip().isdigit():
            return float(value.strip())
        try:
            return max(0.0, (email.utils.parsedate_to_datetime(value) - now).total_seconds())
        except (TypeError, ValueError):
            pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        return _seconds_until(reset.strip(), now)
    return None


def _seconds_until(reset: str, now: datetime) -> float | None:
    try:
        stamp = float(reset)
        return max(0.0, stamp - now.timestamp())
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(reset.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def raise_for_response(
    response: requests.Response,
    *,
    system: str,
    what: str,
    auth_hint: str,
    quota_reasons: tuple[str, ...] = (),
) -> None:
    """Turn a non-2xx response into the matching ConnectorError; return quietly on success.

    `what` names the resource ("table task_sla", "issue SLM-12"); `auth_hint` the permission
    or role usually missing on 401/403.
    """
    action = action_for(response.status_code)
    if action is Action.OK:
        return
    status = response.status_code
    summary = f"{system} answered {status} for {what}"
    if action is Action.RATE_LIMITED:
        reason = response.headers.get("RateLimit-Reason", "")
        raise RateLimited(
            f"{summary}: rate limited{f' ({reason})' if reason else ''}",
            system=system,
            retry_after=retry_after_seconds(response.headers),
            quota=any(q in reason for q in quota_reasons) if reason else False,
        )
    if action is Action.RETRY:
        raise TransientError(summary, system=system, status=status)
    if action is Action.AUTH:
        raise AuthError(summary, system=system, hint=auth_hint)
    if action is Action.REJECTED:
        raise RequestRejected(f"{summary}: {_excerpt(response)}", system=system, status=status)
    raise ConnectorError(f"{summary}: {_excerpt(response)}", system=system, status=status)


def unreadable_body(response: requests.Response, *, system: str, what: str) -> TransientError:
    """A 2xx whose body is not JSON (cut short by a proxy or a dropped connection): transient,
    and the request was processed (`sent`). No `status`: retries of it count as errors in the
    metrics, not as a 2xx."""
    return TransientError(
        f"{system} answered {response.status_code} for {what} with a body that is not JSON "
        f"({len(response.content)} bytes; cut short?)",
        system=system,
    )


def _excerpt(response: requests.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("…" if len(text) > limit else "")


def transport_error(exc: requests.RequestException, *, system: str, what: str) -> ConnectorError:
    """A requests exception as a ConnectorError: timeouts, resets and cut bodies are transient.

    `sent` is False only when no connection was made (refused, DNS, connect timeout, proxy
    unreachable); a read timeout or a reset after connecting may have reached the tool.
    """
    if isinstance(exc, requests.exceptions.SSLError):
        return FatalError(
            f"{system}: TLS verification failed for {what}: {exc}",
            system=system,
            hint="set http.ca_bundle to your CA's PEM file; keep verification on in production",
        )
    if isinstance(exc, _CUT_BODY):
        return TransientError(
            f"{system}: the answer for {what} was cut short ({type(exc).__name__})", system=system
        )
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        sent = not never_sent(exc)
        stage = "after sending" if sent else "before sending"
        return TransientError(
            f"{system}: {type(exc).__name__} {stage} for {what}", system=system, sent=sent
        )
    return ConnectorError(f"{system}: {exc} for {what}", system=system)


_CUT_BODY = (
    requests.exceptions.JSONDecodeError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def never_sent(exc: requests.RequestException) -> bool:
    """Whether the request certainly never reached the tool: no connection was established.

    requests wraps urllib3's cause in `MaxRetryError.reason`; a `NewConnectionError` (refused,
    DNS) is a `ConnectTimeoutError` there. When in doubt the answer is False.
    """
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    cause = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)
    return isinstance(cause, urllib3.exceptions.ConnectTimeoutError)


def monotonic_deadline(seconds: float) -> float:
    """A time.monotonic() value `seconds` from now, for Pacer.pause_until."""
    return time.monotonic() + seconds
