"""What can go wrong talking to an ITSM tool, and what the caller should do about it.

    ConnectorError                  every failure of a connector
    ├── TransientError              retried by the shared policy (connectors.retry)
    │   └── RateLimited             429: wait `retry_after` seconds at least
    ├── FatalError                  retrying cannot help; stop this system for this run
    │   └── AuthError               401 / 403: names the table/permission that is missing
    ├── RequestRejected             the tool refused one request (400): names field and config key
    └── RecordError                 one record cannot be read (malformed JSON, missing field)

A `RecordError` never stops a run: the record is skipped and reported with its id.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """A failure talking to an ITSM tool; `system` says which."""

    def __init__(self, message: str, *, system: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        self.system = system
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (hint: {self.hint})" if self.hint else text


class TransientError(ConnectorError):
    """Worth retrying: 5xx from a proxy, timeout, connection reset."""

    def __init__(
        self, message: str, *, system: str = "", status: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, system=system, hint=hint)
        self.status = status


class RateLimited(TransientError):
    """429: the tool asked us to wait `retry_after` seconds; `quota` if a quota, not a burst."""

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        retry_after: float | None = None,
        quota: bool = False,
    ) -> None:
        super().__init__(message, system=system, status=429)
        self.retry_after = retry_after
        self.quota = quota


class FatalError(ConnectorError):
    """Retrying cannot help (bad URL, TLS failure, missing permission)."""


class AuthError(FatalError):
    """401 or 403; the message names what was being accessed and the permission usually needed."""


class RequestRejected(ConnectorError):
    """The tool rejected one request as invalid (400/404/409); other requests may still work."""

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        status: int | None = None,
        field_errors: dict[str, str] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, system=system, hint=hint)
        self.status = status
        self.field_errors = field_errors or {}


class RecordError(ConnectorError):
    """One record could not be read; `record_id` names it (sys_id, issue key)."""

    def __init__(self, message: str, *, system: str = "", record_id: str = "") -> None:
        super().__init__(message, system=system)
        self.record_id = record_id
