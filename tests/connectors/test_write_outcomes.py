"""How a failed request is classified: never sent, refused, or in doubt (`OutcomeUnknown`)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests
import urllib3.exceptions

from connectors import (
    AuthError,
    ConnectorError,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    RetryPolicy,
    TransientError,
    set_testing,
)
from connectors.errors import write_failure
from connectors.http import transport_error


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_was_never_sent() -> None:
    """A real refused connection on 127.0.0.1 is transient and `sent=False`: a write that
    failed this way may be sent again, so `write_failure` leaves it as it is."""
    with pytest.raises(requests.ConnectionError) as caught:
        requests.post(f"http://127.0.0.1:{_closed_port()}/rest/api/3/issue", timeout=2)
    error = transport_error(caught.value, system="jira", what="create")
    assert isinstance(error, TransientError) and not error.sent
    assert "before sending" in str(error)
    assert write_failure(error, what="create") is error


def _refused() -> requests.ConnectionError:
    cause = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", cause))  # type: ignore[arg-type]


def _reset() -> requests.ConnectionError:
    reset = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104))
    return requests.ConnectionError(reset)


@pytest.mark.parametrize(
    ("exc", "sent"),
    [
        (requests.ConnectTimeout("connect timed out"), False),
        (_refused(), False),
        (requests.exceptions.ProxyError("proxy unreachable"), False),
        (requests.ReadTimeout("read timed out"), True),
        (_reset(), True),
        (requests.ConnectionError("no cause given"), True),
        (requests.exceptions.ChunkedEncodingError("body cut short"), True),
        (requests.JSONDecodeError("Expecting value", "{", 1), True),
    ],
)
def test_transport_errors_say_whether_the_request_left(
    exc: requests.RequestException, sent: bool
) -> None:
    """Connect-stage failures are `sent=False`; once connected, or when unsure, `sent=True`."""
    error = transport_error(exc, system="jira", what="bulk create")
    assert isinstance(error, TransientError) and error.sent is sent
    failure = write_failure(error, what="bulk create")
    assert isinstance(failure, OutcomeUnknown) is sent


@pytest.mark.parametrize(
    "refused",
    [
        RequestRejected("400", system="jira", status=400),
        AuthError("403", system="jira", status=403),
        RateLimited("429", system="jira", retry_after=1.0),
    ],
)
def test_refused_or_rate_limited_writes_are_not_in_doubt(refused: ConnectorError) -> None:
    """A 4xx and a 429 mean the tool did nothing: the error stays what it is."""
    assert write_failure(refused, what="create") is refused


def test_a_5xx_or_an_unreadable_answer_puts_a_write_in_doubt() -> None:
    """A 500 (not retried by the table) and a cut-short 201 both may have been applied: the
    write raises `OutcomeUnknown` naming the write, keeping the status and the cause."""
    server = ConnectorError("jira answered 500 for create", system="jira", status=500)
    cut = TransientError("jira answered 201 with a body that is not JSON", status=201)
    for error in (server, cut):
        failure = write_failure(error, what="create of slm:2026:cycle", hint="look it up")
        assert isinstance(failure, OutcomeUnknown) and failure.sent
        assert failure.status == error.status and failure.__cause__ is error
        assert failure.what == "create of slm:2026:cycle"
        assert "outcome unknown" in str(failure) and "look it up" in str(failure)


def test_the_policy_never_resends_a_write_in_doubt() -> None:
    """`OutcomeUnknown` is a TransientError (callers treat it per ticket) that the retry
    policy does not retry, while an ordinary transient error is retried."""
    calls: list[str] = []

    def in_doubt() -> None:
        calls.append("write")
        raise OutcomeUnknown("timed out after sending", system="jira", what="create")

    with pytest.raises(OutcomeUnknown):
        RetryPolicy(max_attempts=5).call(in_doubt, system="jira", what="create")
    assert calls == ["write"]

    def flaky() -> str:
        calls.append("read")
        if calls.count("read") < 3:
            raise TransientError("502", system="jira", status=502)
        return "ok"

    assert RetryPolicy(max_attempts=5).call(flaky, system="jira", what="search") == "ok"
    assert calls.count("read") == 3
