"""The close rule without HTTP: failures are retried next cycle and never fail the caller."""

from __future__ import annotations

from structlog.testing import capture_logs

from connectors import ConnectorError, TicketRef
from sync.closing import CloseCheck, close_finished
from sync.state import StateStore

REF = TicketRef("SLM-7", "10007")
KEY = "slm:2026:mail:review"


class _Flaky:
    """A target whose close fails with a 503 until `healthy` is set."""

    system = "jira"

    def __init__(self) -> None:
        self.healthy = False
        self.closed: list[str] = []

    def close(self, ref: TicketRef) -> bool:
        if not self.healthy:
            raise ConnectorError("503 from Jira", system="jira", status=503)
        self.closed.append(ref.key)
        return True


def test_a_failed_close_is_logged_and_tried_again_next_cycle(sqlite_store: StateStore) -> None:
    """If the target answers 5xx, the close is logged, nothing raises, and the next cycle closes
    the ticket; the cycle after that does not close it again."""
    target = _Flaky()
    check = CloseCheck(KEY, REF, ready=True, done=False)
    with capture_logs() as logs:
        assert close_finished(target, sqlite_store, [check]) == []  # type: ignore[arg-type]
    assert [e["event"] for e in logs] == ["close.failed"]
    target.healthy = True
    assert close_finished(target, sqlite_store, [check]) == [KEY]  # type: ignore[arg-type]
    assert close_finished(target, sqlite_store, [check]) == []  # type: ignore[arg-type]
    assert target.closed == ["SLM-7"]


def test_a_ticket_a_person_closed_early_is_not_closed_again_after_a_reopen(
    sqlite_store: StateStore,
) -> None:
    """A person closed the ticket themselves, then reopened it: slm-sync leaves it open."""
    target = _Flaky()
    target.healthy = True
    close_finished(target, sqlite_store, [CloseCheck(KEY, REF, ready=True, done=True)])  # type: ignore[arg-type]
    close_finished(target, sqlite_store, [CloseCheck(KEY, REF, ready=True, done=False)])  # type: ignore[arg-type]
    assert target.closed == []
