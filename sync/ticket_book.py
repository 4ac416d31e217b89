"""The ticket book: the last known state of every ticket of ours, kept current by one read.

Each cycle reads only the tickets that changed since the previous read (Jira: `updated >= -Nm`
over the project's tickets with the sync label; ServiceNow: `sys_updated_on` from the last one
seen), reaching `sync.ticket_read_margin_seconds` further back so that a change the target's
search index had not taken at the last read is caught by the next one. Every ticket is read
(a full read) on the first cycle without stored states and every
`sync.ticket_full_read_seconds`: tickets that disappeared (deleted, moved to another project,
their label removed) are then `gone`, and whatever an incremental read missed is mended.

The book lives in memory for the process and in the state store (`ticket_states`), so
`sync --once` and a restart read only what changed. The target's `state()` answers from the
book (`KnownStates`) and reads only tickets the book does not hold (created since its read).
The book is a cache of the tickets, never their authority: a failed read leaves the target
reading live for the cycle, and a webhook naming a ticket has that ticket read live.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import structlog

from connectors import (
    ConnectorError,
    FatalError,
    IncrementalStates,
    KnownStates,
    LinkedTicket,
    TargetConnector,
    TicketComment,
    TicketRef,
    TicketState,
)
from sync.state import StateStore, TicketRead

log = structlog.get_logger("slm_sync.tickets")
KEY_PREFIX = "slm:"  # idempotency keys (review.plan.ticket_key) among a ticket's labels


@dataclass
class TicketBook:
    """One target's ticket states: loaded once per process, refreshed once per cycle."""

    store: StateStore
    target: TargetConnector
    margin_seconds: float = 60.0
    full_every_seconds: float = 3600.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # What the last refresh read (every ticket on a full read), by ticket key.
    changed: dict[str, TicketState] = field(default_factory=dict, init=False)
    full: bool = field(default=False, init=False)
    read_now: bool = field(default=False, init=False)  # this cycle's read succeeded
    _known: KnownStates | None = field(default=None, init=False)
    _read: TicketRead | None = field(default=None, init=False)

    def refresh(self, fresh: Sequence[str] = ()) -> None:
        """Bring the book up to date with one read and hand it to the target; `fresh`: ticket
        keys a webhook named, read live (the search index may not have their change yet)."""
        target = self.target
        self.read_now = False
        if not isinstance(target, IncrementalStates):
            return
        known = self._load()
        full = self._full_due(known)
        target.known_states = known  # what a read may skip as unchanged
        try:
            read = target.read_states(None if full else self._mark(), self.margin_seconds)
        except FatalError:
            raise
        except ConnectorError as error:  # the cycle reads its tickets live instead
            target.known_states = None
            log.warning("tickets.read_failed", error=str(error), full=full)
            return
        target.known_states = None
        now = self.clock()
        if full:
            gone = (set(known.states) | known.gone) - set(read.states)
            known = KnownStates(dict(read.states), gone)
        else:
            known.states.update(read.states)
            known.gone -= set(read.states)
        relinked = _relinked(known, read.linked, read.unlinked)
        known.states.update(relinked)
        self.changed, self.full, self.read_now = dict(read.states), full, True
        self._read = TicketRead(
            read.mark, now if full or self._read is None else self._read.full_at
        )
        self._known = known
        self.store.store_tickets(
            target.system, self._read,
            {key: state_body(state) for key, state in {**read.states, **relinked}.items()},
            gone=known.gone if full else (), full=full,
        )  # fmt: skip
        self._read_live(known, fresh)
        target.known_states = known

    @property
    def known(self) -> KnownStates | None:
        """The tickets as of the last read (None before the first)."""
        return self._known

    def close(self) -> None:
        """The cycle is over: the target's reads stop answering from the book (it is as of
        this cycle's read; a page rendered after the cycle reads what the tickets show now)."""
        if isinstance(self.target, IncrementalStates):
            self.target.known_states = None

    def listing(self) -> list[tuple[str, TicketRef, bool]] | None:
        """(idempotency key, ticket, done) of every ticket this cycle's read returned (every
        ticket of ours on a full read), oldest first: what the duplicate audit checks. None when
        the target has no such read or it failed this cycle (the audit searches then)."""
        if not self.read_now:
            return None
        ordered = sorted(self.changed.values(), key=_creation_order)
        return [
            (label, state.ref, state.done)
            for state in ordered
            for label in state.labels
            if label.startswith(KEY_PREFIX)
        ]

    def everything(self) -> dict[str, TicketRef] | None:
        """Idempotency key -> ticket (the oldest, where two carry one) of every ticket of ours,
        when this cycle's read was a full one; else None (an incremental read lists only what
        changed)."""
        if not (self.full and self.read_now):
            return None
        found: dict[str, TicketRef] = {}
        for label, ref, _done in self.listing() or ():
            found.setdefault(label, ref)
        return found

    def _load(self) -> KnownStates:
        if self._known is None:
            stored = self.store.stored_tickets(self.target.system)
            states = {key: state_from(body) for key, body in stored.states.items()}
            self._known, self._read = KnownStates(states, stored.gone), stored.read
        return self._known

    def _full_due(self, known: KnownStates) -> bool:
        if self._read is None or not known.states:
            return True
        age = (self.clock() - self._read.full_at).total_seconds()
        return age >= self.full_every_seconds

    def _mark(self) -> str:
        assert self._read is not None
        return self._read.mark

    def _read_live(self, known: KnownStates, keys: Sequence[str]) -> None:
        """The named tickets as the target shows them now (through its index lag)."""
        if not keys:  # most cycles: no ledger read
            return
        refs = [known.states[key].ref for key in keys if key in known.states]
        rows = self.store.ledger_rows(self.target.system).values()
        held = {ref.key for ref in refs}
        refs += [
            TicketRef(row.ticket_key, row.ticket_id or "", row.ticket_url)
            for row in rows
            if row.ticket_key and row.ticket_key in keys and row.ticket_key not in held
        ]
        if not refs:
            return
        found = self.target.state(refs, comments=True)
        known.states.update(found)
        known.gone -= set(found)


def _relinked(
    known: KnownStates, linked: Mapping[str, LinkedTicket], unlinked: AbstractSet[str]
) -> dict[str, TicketState]:
    """The states whose links show a linked ticket as it changed (an improvement action done,
    reopened, renamed, moved to another key: matched by id where known) or deleted, with their
    links brought up to date."""
    if not linked and not unlinked:
        return {}
    by_id = {ticket.id: ticket for ticket in linked.values() if ticket.id}
    found: dict[str, TicketState] = {}
    for key, state in known.states.items():
        if not state.links:
            continue
        links = tuple(
            (by_id.get(link.id) if link.id else None) or linked.get(link.key, link)
            for link in state.links
            if link.key not in unlinked
        )
        if links != state.links:
            found[key] = replace(state, links=links)
    return found


def _creation_order(state: TicketState) -> tuple[str, int, str]:
    """Oldest first: by creation time where the target told it, then by numeric id."""
    created = state.fields.get("created") or state.fields.get("sys_created_on") or ""
    number = int(state.ref.id) if state.ref.id.isdigit() else 0
    return str(created), number, state.ref.key


def state_body(state: TicketState) -> dict[str, Any]:
    """A ticket state as JSON for the state store."""
    return {
        "ref": [state.ref.key, state.ref.id, state.ref.url],
        "status": state.status,
        "done": state.done,
        "labels": list(state.labels),
        "fields": dict(state.fields),
        "due": state.due.isoformat() if state.due else None,
        "resolved": state.resolved.isoformat() if state.resolved else None,
        "assignee": state.assignee,
        "comments": [[c.author, c.created.isoformat(), c.text, c.ours] for c in state.comments],
        "links": None
        if state.links is None
        else [[link.key, link.title, link.done, link.url, link.id] for link in state.links],
    }


def state_from(body: dict[str, Any]) -> TicketState:
    """A ticket state stored by `state_body`."""
    key, ticket_id, url = body["ref"]
    return TicketState(
        ref=TicketRef(key, ticket_id, url),
        status=body["status"],
        done=body["done"],
        labels=tuple(body["labels"]),
        fields=body["fields"],
        due=date.fromisoformat(body["due"]) if body["due"] else None,
        resolved=datetime.fromisoformat(body["resolved"]) if body["resolved"] else None,
        assignee=body["assignee"],
        comments=tuple(
            TicketComment(author, datetime.fromisoformat(created), text, ours)
            for author, created, text, ours in body["comments"]
        ),
        links=None
        if body.get("links") is None  # stored before links were read with the states
        else tuple(LinkedTicket(*link) for link in body["links"]),
    )
