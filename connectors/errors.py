"""What can go wrong talking to an ITSM tool, and what the caller should do about it.

    ConnectorError                  every failure of a connector (`status` if the tool answered)
    ├── TransientError              retried by the shared policy (connectors.retry)
    │   │                           `sent`: False only if the tool certainly did not act on it
    │   ├── RateLimited             429: wait `retry_after` seconds at least (sent=False)
    │   └── OutcomeUnknown          a write was sent and may have been applied, but its answer
    │                               was lost or unreadable: never re-sent by the policy
    ├── FatalError                  retrying cannot help; stop this system for this run
    │   └── AuthError               401 / 403: names the table/permission that is missing
    ├── RequestRejected             the tool refused one request (4xx): names field and config key
    └── RecordError                 one record cannot be read (malformed JSON, missing field)

A `RecordError` never stops a run: the record is skipped and reported with its id.

A failed write that is not idempotent (create, comment, attachment) ends in one of three ways:

- refused: `RequestRejected` / `FatalError` (a 4xx, TLS): the tool did nothing;
- never sent: a `TransientError` with `sent=False` (connection refused, connect timeout, DNS,
  429): the tool did nothing, so the connector retried it under the policy like a read; this is
  what is left when the policy's attempts or time ran out;
- in doubt: `OutcomeUnknown` (read timeout, reset after sending, 5xx, a 2xx whose body cannot be
  read): the tool may have done it, or may still do it; look it up before writing again.

`write_failure(error)` turns the error of a non-idempotent write into that classification.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """A failure talking to an ITSM tool; `system` says which, `status` the HTTP status if any."""

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        hint: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.system = system
        self.hint = hint
        self.status = status

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (hint: {self.hint})" if self.hint else text


class TransientError(ConnectorError):
    """Worth retrying: 5xx from a proxy, timeout, connection reset, a body cut short.

    `sent` is False only when the tool certainly did not act on the request: the connection
    was never made (refused, connect timeout, DNS) or the tool answered 429. True otherwise,
    including when we cannot tell.
    """

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        status: int | None = None,
        hint: str | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(message, system=system, hint=hint, status=status)
        self.sent = sent


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
        super().__init__(message, system=system, status=429, sent=False)
        self.retry_after = retry_after
        self.quota = quota


class OutcomeUnknown(TransientError):
    """A non-idempotent write (create, comment, attachment) was sent, but whether the tool
    applied it is unknown: read timeout, reset after sending, 5xx, or a 2xx whose body could
    not be read. The retry policy never re-sends it; `what` names the write.

    The tool may still finish it after we stopped waiting, and its search may lag behind: a
    lookup made right after this error proves nothing (DESIGN.md "Idempotency").
    """

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        status: int | None = None,
        hint: str | None = None,
        what: str = "",
    ) -> None:
        super().__init__(message, system=system, status=status, hint=hint, sent=True)
        self.what = what


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
        super().__init__(message, system=system, hint=hint, status=status)
        self.field_errors = field_errors or {}


class RecordError(ConnectorError):
    """One record could not be read; `record_id` names it (sys_id, issue key)."""

    def __init__(self, message: str, *, system: str = "", record_id: str = "") -> None:
        super().__init__(message, system=system)
        self.record_id = record_id


def write_failure(error: ConnectorError, *, what: str, hint: str | None = None) -> ConnectorError:
    """The error a failed non-idempotent write should raise: `OutcomeUnknown` if it may have
    been applied, else `error` itself (refused, or certainly never sent).

    Anything not known to be refused or unsent counts as in doubt: treating a refused write as
    in doubt costs a lookup; treating an applied one as refused costs a duplicate.
    """
    if isinstance(error, OutcomeUnknown | FatalError | RequestRejected | RecordError):
        return error
    if isinstance(error, TransientError) and not error.sent:
        return error
    message = str(error.args[0]) if error.args else type(error).__name__
    unknown = OutcomeUnknown(
        f"{message} (outcome unknown: the {what} may have been applied; not re-sent)",
        system=error.system,
        status=error.status,
        hint=hint or error.hint,
        what=what,
    )
    unknown.__cause__ = error
    return unknown
