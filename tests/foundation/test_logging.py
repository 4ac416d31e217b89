"""Logging: secrets never reach a log line, from our loggers or from libraries'."""

from __future__ import annotations

import io
import json
import logging

from sync.logs import configure_logging

TOKEN = "ATATT3xFfGF0-very-secret-token"


def _configure(stream: io.StringIO) -> None:
    configure_logging(level="DEBUG", fmt="json", secrets=[TOKEN], stream=stream)


def test_structlog_event_with_the_token_prints_no_token() -> None:
    """A log call that carries the token, directly or nested, prints *** instead."""
    import structlog

    out = io.StringIO()
    _configure(out)
    structlog.get_logger("t").info(
        "jira.request", url=f"https://x/?t={TOKEN}", headers={"X-Other": TOKEN}, note=[TOKEN]
    )
    line = out.getvalue()
    assert TOKEN not in line
    event = json.loads(line)
    assert event["event"] == "jira.request"
    assert event["url"] == "https://x/?t=***"


def test_stdlib_library_logs_are_json_and_redacted() -> None:
    """A library logging an Authorization header through stdlib logging shows no credential."""
    out = io.StringIO()
    _configure(out)
    logging.getLogger("urllib3.connectionpool").warning(
        "send: headers={'Authorization': 'Basic dXNlcjpwYXNzd29yZA=='}"
    )
    logging.getLogger("pysnow").warning("token is %s", TOKEN)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    assert "dXNlcjpwYXNzd29yZA" not in out.getvalue()
    assert TOKEN not in out.getvalue()
    assert lines[0]["logger"] == "urllib3.connectionpool"


def test_sensitive_keys_are_masked_whatever_their_value() -> None:
    """A field named like a credential (password, api_token) is masked even if not configured."""
    import structlog

    out = io.StringIO()
    _configure(out)
    structlog.get_logger("t").info("login", password="hunter22", api_token="abc123", user="bob")
    event = json.loads(out.getvalue())
    assert event["password"] == "***"
    assert event["api_token"] == "***"
    assert event["user"] == "bob"


def test_exception_tracebacks_are_redacted() -> None:
    """A traceback that contains the secret in its message is masked too."""
    import structlog

    out = io.StringIO()
    _configure(out)
    try:
        raise RuntimeError(f"401 for token {TOKEN}")
    except RuntimeError:
        structlog.get_logger("t").exception("call.failed")
    assert TOKEN not in out.getvalue()
    assert "RuntimeError" in out.getvalue()
