"""Where each service was last reviewed, when the state file does not know the earlier cycles
(a lost state file, a new installation beside old tickets): looked up once per earlier cycle
and cached; in the ticket book's full read of every ticket of ours when this cycle made one
(no call: a cold start at 10,000 services asked 200 key searches per earlier cycle), else in
the target by key. Both find the same reviews, the oldest ticket where two carry one key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from config import Settings
from connectors import TicketRef, TicketState
from review import cycle_for, earlier_cycles, review_ticket_key
from sync.history import latest_reviews
from sync.state import MirrorRecord, StateStore, open_store
from sync.ticket_book import TicketBook

CYCLE = cycle_for(date(2026, 3, 1), "yearly", "01-15")
SERVICES = [f"svc-{n}" for n in range(120)]  # more than one key search's worth (50)


@dataclass
class Target:
    """Tickets by idempotency key; counts the key look-ups."""

    system: str = "fake"
    tickets: dict[str, TicketRef] = field(default_factory=dict)
    looked_up: list[int] = field(default_factory=list)  # keys per `find`

    def find(self, keys: Sequence[str], *, recent: bool = False) -> dict[str, TicketRef]:
        self.looked_up.append(len(keys))
        return {key: self.tickets[key] for key in keys if key in self.tickets}


@pytest.fixture
def mirrored(tmp_path: Path) -> StateStore:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    rows = [MirrorRecord("service", key, {"key": key, "name": key}) for key in SERVICES]
    store.store_page("servicenow", "service", rows, None)
    return store


def _reviewed(target: Target) -> dict[str, str]:
    """Last year's reviews of svc-3 and svc-77, and svc-5's review two years ago."""
    last, before = earlier_cycles(CYCLE, 2, "01-15")
    reviewed = {"svc-3": last, "svc-77": last, "svc-5": before}
    for number, (service, cycle) in enumerate(reviewed.items(), start=1):
        target.tickets[review_ticket_key(cycle.id, service)] = TicketRef(f"R-{number}", str(number))
    return {service: cycle.id for service, cycle in reviewed.items()}


def test_the_ticket_books_full_read_answers_without_a_call(mirrored: StateStore) -> None:
    target = Target()
    expected = _reviewed(target)
    settings = Settings()
    found = latest_reviews(mirrored, target, settings, CYCLE, SERVICES,  # type: ignore[arg-type]
                           every=dict(target.tickets))  # fmt: skip
    assert {k: r.cycle for k, r in found.items()} == expected
    assert found["svc-77"].ref.key == "R-2"
    assert target.looked_up == [], "no key search: the book holds every ticket of ours"
    # Cached: a later cycle without a full read asks nothing either.
    again = latest_reviews(mirrored, target, settings, CYCLE, SERVICES)  # type: ignore[arg-type]
    assert again == found and target.looked_up == []


def test_without_a_full_read_the_target_is_asked_once_per_earlier_cycle(
    mirrored: StateStore,
) -> None:
    target = Target()
    expected = _reviewed(target)
    settings = Settings()
    found = latest_reviews(mirrored, target, settings, CYCLE, SERVICES)  # type: ignore[arg-type]
    assert {k: r.cycle for k, r in found.items()} == expected
    assert target.looked_up == [len(SERVICES)] * 3, "three earlier cycles, every service's key"
    latest_reviews(mirrored, target, settings, CYCLE, SERVICES)  # type: ignore[arg-type]
    assert len(target.looked_up) == 3, "cached"


def test_the_book_lists_every_ticket_only_after_a_full_read_that_succeeded(
    mirrored: StateStore,
) -> None:
    """`everything()` is the full read's tickets by idempotency key, the oldest where two
    carry one key; None after an incremental read (only what changed) or a failed one."""
    book = TicketBook(mirrored, Target())  # type: ignore[arg-type]
    key = review_ticket_key("2025", "svc-3")
    older = TicketState(TicketRef("R-9", "9"), "Done", True, (key, "slm-sync"),
                        fields={"created": "2025-01-15T09:00:00.000+0000"})  # fmt: skip
    newer = TicketState(TicketRef("R-2", "2"), "To Do", False, (key, "slm-sync"),
                        fields={"created": "2025-02-01T09:00:00.000+0000"})  # fmt: skip
    book.changed = {"R-2": newer, "R-9": older}
    book.full, book.read_now = True, True
    assert book.everything() == {key: older.ref}
    book.full = False
    assert book.everything() is None, "an incremental read lists only what changed"
    book.full, book.read_now = True, False
    assert book.everything() is None, "this cycle's read failed"
