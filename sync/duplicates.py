"""The duplicate audit: tickets that carry the same idempotency key, however they arose.

The protocol never creates a key twice, but duplicates can still appear: a person copies or
clones a ticket (its labels / correlation_id come along), or an older version had a bug. Each
cycle checks the tickets of ours that the cycle's ticket read returned (`sync.ticket_book`: every
ticket changed since the last read, all of them on a full read); a target without that read is
searched for the tickets created since the previous audit (the first audit reads them all).
They are compared with the ledger: a key with more than one open ticket is a duplicate.
Found duplicates are kept in the state store until they are resolved, so `doctor` and
`/metrics` (`slm_sync_duplicate_tickets`) report them.

With `sync.resolve_duplicates: true` each later ticket is linked to the survivor (the oldest:
the one the review lives in) as a duplicate, gets a note, and is closed; the ledger points at
the survivor. Nothing is ever deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import structlog

from connectors import ConnectorError, FatalError, TargetConnector, TicketRef
from sync.state import LedgerRow, MirrorRecord, StateStore

log = structlog.get_logger("slm_sync.duplicates")
AUDIT_STREAM = "duplicate_audit"  # cursor: when the last audit started
FOUND_STREAM = "duplicates"  # records: open duplicates by key
MARGIN = timedelta(minutes=5)  # overlap between audits: search index lag, clock skew


@runtime_checkable
class AuditableTarget(Protocol):
    """A target that can list its recently created tickets and retire a duplicate."""

    def ours_created_since(self, since: datetime | None) -> list[tuple[str, TicketRef, bool]]: ...

    def retire_duplicate(self, duplicate: TicketRef, survivor: TicketRef) -> None: ...


@dataclass(frozen=True)
class Duplicate:
    """Several open tickets for one key: the survivor first, then the later copies."""

    key: str
    survivor: TicketRef
    others: tuple[TicketRef, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "survivor": self.survivor.key,
            "duplicates": [ref.key for ref in self.others],
        }


@dataclass
class DuplicateAudit:
    """One audit per cycle for one target (see the module docstring)."""

    target: TargetConnector
    store: StateStore
    resolve: bool = False
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # (key, ticket, done) of the tickets this cycle's ticket read returned (sync.ticket_book):
    # every ticket created since the last read is among them, so no search is needed
    listed: Sequence[tuple[str, TicketRef, bool]] | None = None

    def run(self) -> list[Duplicate]:
        """Find (and, if configured, resolve) duplicates; returns those still open."""
        if not isinstance(self.target, AuditableTarget):
            return []
        started = self.clock()
        since = self._last_audit()
        tickets = (
            list(self.listed)
            if self.listed is not None
            else self.target.ours_created_since(since - MARGIN if since else None)
        )
        # Retiring copies acts on what the ledger says now (another replica may have written
        # it during this cycle); a report alone takes the cycle's read.
        ledger = self.store.ledger_rows(self.target.system, fresh=self.resolve)
        found = {d.key: d for d in _group(tickets, ledger)}
        found.update({d.key: d for d in self._still_open(found)})
        if self.resolve:
            found = {d.key: d for d in found.values() if not self._retire(d, ledger.get(d.key))}
        self._remember(list(found.values()), started)
        for duplicate in found.values():
            log.warning("ticket.duplicate", **duplicate.as_json())
        return sorted(found.values(), key=lambda d: d.key)

    def _last_audit(self) -> datetime | None:
        cursor = self.store.cursor(self.target.system, AUDIT_STREAM)
        return datetime.fromisoformat(cursor[0]) if cursor else None

    def _still_open(self, fresh: dict[str, Duplicate]) -> list[Duplicate]:
        """Duplicates found by earlier audits and not seen now: still open ones stay."""
        earlier = [r for r in self.store.mirrored(FOUND_STREAM) if r.key not in fresh and r.body]
        if not earlier:
            return []
        refs = {
            ref["key"]: TicketRef(ref["key"], ref["id"], ref.get("url"))
            for record in earlier
            for ref in record.body["tickets"]
        }
        states = self.target.state(list(refs.values()))
        kept = []
        for record in earlier:
            open_refs = [
                refs[t["key"]]
                for t in record.body["tickets"]
                if t["key"] in states and not states[t["key"]].done
            ]
            if len(open_refs) > 1:
                kept.append(Duplicate(record.key, open_refs[0], tuple(open_refs[1:])))
        return kept

    def _retire(self, duplicate: Duplicate, row: LedgerRow | None) -> bool:
        """Close the later copies; True when all of them are closed."""
        assert isinstance(self.target, AuditableTarget)
        try:
            for other in duplicate.others:
                self.target.retire_duplicate(other, duplicate.survivor)
                log.info("ticket.duplicate_retired", key=duplicate.key, ticket=other.key)
        except FatalError:
            raise
        except ConnectorError as error:
            log.warning("ticket.duplicate_retire_failed", key=duplicate.key, error=str(error))
            return False
        if row is not None and row.ticket_key != duplicate.survivor.key:
            survivor = duplicate.survivor
            self.store.record_created(
                self.target.system,
                duplicate.key,
                ticket_key=survivor.key,
                ticket_id=survivor.id,
                ticket_url=survivor.url,
                applied_hash="",
            )  # fmt: skip  (applied "": the next cycle brings the survivor up to date)
        return True

    def _remember(self, found: Sequence[Duplicate], started: datetime) -> None:
        records = [
            MirrorRecord(
                stream=FOUND_STREAM,
                key=d.key,
                body={
                    "tickets": [
                        {"key": r.key, "id": r.id, "url": r.url} for r in (d.survivor, *d.others)
                    ]
                },
            )
            for d in found
        ]
        self.store.prune(FOUND_STREAM, {d.key for d in found})
        self.store.store_page(self.target.system, AUDIT_STREAM, records, (started.isoformat(), ""))


def _group(
    tickets: Sequence[tuple[str, TicketRef, bool]], ledger: dict[str, LedgerRow]
) -> list[Duplicate]:
    """Keys with more than one open ticket among those listed and the ledger's own ticket."""
    by_key: dict[str, list[TicketRef]] = {}
    for key, ref, done in tickets:
        if not done and ref not in by_key.setdefault(key, []):
            by_key[key].append(ref)
    duplicates = []
    for key, refs in by_key.items():
        row = ledger.get(key)
        if row is not None and row.state == "created" and row.ticket_key:
            known = TicketRef(row.ticket_key, row.ticket_id or "", row.ticket_url)
            if all(ref.key != known.key for ref in refs):
                refs.insert(0, known)  # older than this audit's window: the survivor
        if len(refs) > 1:
            duplicates.append(Duplicate(key, refs[0], tuple(refs[1:])))
    return duplicates


def recorded(store: StateStore) -> list[Duplicate]:
    """The open duplicates the last audit recorded (for `doctor`)."""
    found = []
    for record in store.mirrored(FOUND_STREAM):
        refs = [TicketRef(t["key"], t["id"], t.get("url")) for t in record.body["tickets"]]
        if len(refs) > 1:
            found.append(Duplicate(record.key, refs[0], tuple(refs[1:])))
    return found
