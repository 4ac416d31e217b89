"""The shared retry policy and pacing: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from connectors import (
    AuthError,
    Pacer,
    RateLimited,
    RetryEvent,
    RetryPolicy,
    TransientError,
)
from connectors.http import Action, action_for, retry_after_seconds


def _policy(**overrides: object) -> tuple[RetryPolicy, list[float], list[RetryEvent]]:
    slept: list[float] = []
    events: list[RetryEvent] = []
    policy = RetryPolicy(sleep=slept.append, rng=random.Random(1), **overrides)  # type: ignore[arg-type]
    policy.observers.append(events.append)
    return policy, slept, events


def _failing(errors: list[Exception], result: str = "ok") -> object:
    def call() -> str:
        if errors:
            raise errors.pop(0)
        return result

    return call


def test_transient_errors_are_retried_until_success() -> None:
    """Two 503s then success: the caller gets the result; two retries are logged and observed."""
    policy, slept, events = _policy()
    call = _failing([TransientError("x", status=503), TransientError("x", status=503)])
    assert policy.call(call, system="jira", what="search") == "ok"  # type: ignore[arg-type]
    assert len(slept) == 2
    assert [e.status for e in events] == [503, 503]


def test_backoff_grows_between_attempts() -> None:
    """Waits are bounded by an exponentially growing ceiling (no hot loop)."""
    policy, slept, _ = _policy(max_attempts=6, max_seconds=1000)
    call = _failing([TransientError("x") for _ in range(5)])
    policy.call(call, system="sn", what="t")  # type: ignore[arg-type]
    assert all(w > 0 for w in slept)
    ceilings = [min(30.0, 0.5 * 2**i) for i in range(5)]
    assert all(w <= c for w, c in zip(slept, ceilings, strict=True))


def test_retry_after_is_a_minimum_wait() -> None:
    """A 429 with Retry-After: 7 waits at least 7 seconds before the next attempt."""
    policy, slept, _ = _policy(max_seconds=100)
    call = _failing([RateLimited("429", retry_after=7.0)])
    policy.call(call, system="jira", what="create")  # type: ignore[arg-type]
    assert slept[0] >= 7.0


def test_a_wait_past_the_time_budget_gives_up_at_once() -> None:
    """A quota reset an hour away is not slept into: the 429 is raised without waiting."""
    policy, slept, _ = _policy(max_seconds=60)
    call = _failing([RateLimited("429", retry_after=3600.0)])
    with pytest.raises(RateLimited):
        policy.call(call, system="jira", what="create")  # type: ignore[arg-type]
    assert slept == []


def test_attempt_limit_reraises_the_last_error() -> None:
    """After max_attempts the last transient error reaches the caller."""
    policy, slept, _ = _policy(max_attempts=3)
    call = _failing([TransientError(f"e{i}") for i in range(5)])
    with pytest.raises(TransientError, match="e2"):
        policy.call(call, system="sn", what="t")  # type: ignore[arg-type]
    assert len(slept) == 2


def test_fatal_errors_are_not_retried() -> None:
    """401/403 are not retried: the caller sees them on the first attempt."""
    policy, slept, _ = _policy()
    with pytest.raises(AuthError):
        policy.call(_failing([AuthError("401")]), system="sn", what="t")  # type: ignore[arg-type]
    assert slept == []


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (200, Action.OK),
        (400, Action.REJECTED),
        (401, Action.AUTH),
        (403, Action.AUTH),
        (429, Action.RATE_LIMITED),
        (500, Action.FAIL),
        (502, Action.RETRY),
        (503, Action.RETRY),
        (504, Action.RETRY),
    ],
)
def test_status_table(status: int, action: Action) -> None:
    """Only 429 and 502-504 are transient; 500 is a real server error, not retried."""
    assert action_for(status) is action


def test_retry_after_parsing_covers_both_tools() -> None:
    """Seconds, HTTP dates, ServiceNow's epoch reset and Jira's ISO reset are all understood."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "5"}, now) == 5.0
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 2026 12:00:30 GMT"}, now) == 30.0
    assert retry_after_seconds({"X-RateLimit-Reset": str(now.timestamp() + 12)}, now) == 12.0
    assert retry_after_seconds({"X-RateLimit-Reset": "2026-01-01T12:01:00Z"}, now) == 60.0
    assert retry_after_seconds({}, now) is None


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_pacer_spaces_requests_at_the_configured_rate() -> None:
    """10 requests at 5/s with burst 1 take about 1.8 s of (fake) time."""
    clock = _Clock()
    pacer = Pacer(rate=5, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        pacer.acquire()
    assert clock.now == pytest.approx(1.8)


def test_pacer_never_sends_more_than_the_rate_in_any_second() -> None:
    """A full bucket's burst goes first, but then the rest of that second holds what the rate
    allows in it: a tool counting requests per second (fixed windows) sees no more than its
    limit, where the bucket alone let burst + rate through (15 at 10/s with burst 5: a 429)."""
    clock = _Clock()
    pacer = Pacer(rate=10, burst=5, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(40):
        pacer.acquire()
        sent.append(clock.now)
    assert sent[:5] == [0.0] * 5  # the burst still leaves at once
    assert all(later - first >= 1.0 - 1e-9 for first, later in zip(sent, sent[10:], strict=False))
    # ... and the steady rate is the configured one: 40 requests in about 3.5 s, not more
    assert sent[-1] == pytest.approx(3.5, abs=0.01)


@pytest.mark.parametrize("rate", [1.5, 2.5, 0.5, 20.0])
def test_pacer_keeps_a_fractional_rate_on_average(rate: float) -> None:
    """The one-second window rounds a fractional rate's count down, never its average."""
    clock = _Clock()
    pacer = Pacer(rate=rate, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(61):
        pacer.acquire()
    assert 60 / clock.now == pytest.approx(rate, rel=0.01)


def test_pacer_pause_holds_every_request() -> None:
    """After pause_until(t), the next request waits until t even with tokens left."""
    clock = _Clock()
    pacer = Pacer(rate=100, burst=10, clock=clock, sleep=clock.sleep)
    pacer.pause_until(30.0, reason="quota", system="jira")
    pacer.acquire()
    assert clock.now >= 30.0


def test_tls_verification_is_on_by_default_and_turning_it_off_warns() -> None:
    """Sessions verify TLS unless told not to; turning it off logs a warning with the fix."""
    from structlog.testing import capture_logs

    from config import HttpSettings
    from connectors.http import new_session

    assert new_session(HttpSettings()).verify is True
    with capture_logs() as logs:
        session = new_session(HttpSettings(verify_tls=False))
    assert session.verify is False
    assert [e["event"] for e in logs] == ["http.tls_verification_off"]
    assert "http.ca_bundle" in logs[0]["hint"]
