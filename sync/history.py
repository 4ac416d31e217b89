"""Earlier reviews, as the target shows them: each service's latest earlier review ticket, the
months since it (for the selection ranking and the pack) and its open improvement tickets.

Where a service was last reviewed comes from the review tickets of the earlier cycles (the last
`LOOKBACK_YEARS` years of the cycle calendar). The ledger knows them when the state file has
been kept; an earlier cycle the ledger does not know (a lost state file, a new installation
next to old tickets) is looked up once in the target by its review keys (`find`, the same
lookup that adopts tickets; or, free, in the ticket book's full read of every ticket of ours
when this cycle made one, as the first cycle after a lost state file does) and the answer,
found or not, is kept in the mirror stream `review_history`, so it is asked once per earlier
cycle, not every cycle. A review ticket that exists counts as the service's review in that
cycle, dated by its review ticket's resolution date once it is done (read once, then kept in
the same cache), else by the cycle's opening day: the same date whatever the state file holds,
so the texts built from it do not change from one sync to the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import structlog

from config import Settings
from connectors import ConnectorError, FatalError, TargetConnector, TicketRef
from review import (
    Cycle,
    Material,
    MaterialKind,
    RaciMatrix,
    Scope,
    TicketKind,
    activity_ticket_key,
    cycle_ticket_key,
    earlier_cycles,
    months_between,
    review_keys,
)
from review.meeting import decision_from
from review.model import Decision
from sync.state import LedgerRow, MirrorRecord, StateStore

log = structlog.get_logger("slm_sync.history")
HISTORY = "review_history"
LOOKBACK_YEARS = 3  # older reviews score as "never reviewed" (the same points, at the cap)


@dataclass(frozen=True)
class PastReview:
    """A service's review ticket of an earlier cycle."""

    cycle: str
    opens: date
    service_key: str
    key: str  # idempotency key
    ref: TicketRef


@dataclass
class History:
    """What earlier cycles hand to this one."""

    materials: list[Material] = field(default_factory=list)
    last_reviewed: dict[str, date] = field(default_factory=dict)


def carried_over(
    store: StateStore,
    target: TargetConnector,
    settings: Settings,
    cycle: Cycle,
    *,
    selection: Sequence[str] = (),
    matrix: RaciMatrix | None = None,
    every: Mapping[str, TicketRef] | None = None,
) -> History:
    """Each service's latest earlier review (materials and date) and its open improvements;
    for the `selection` (with the `matrix`), the decisions recorded in that review's tickets.
    `every`: every ticket of ours by idempotency key, when this cycle read them all (the ticket
    book's full read): an earlier cycle is then looked up in it instead of the target."""
    services = [str(r.body.get("key") or r.key) for r in store.mirrored("service")]
    latest = latest_reviews(store, target, settings, cycle, services, every=every)
    held = _held_on(store, target, list(latest.values()))
    history = History(last_reviewed={k: held.get(r.key, r.opens) for k, r in latest.items()})
    if not latest:
        return history
    if matrix is not None:
        chosen = [latest[k] for k in sorted(set(selection)) if k in latest]
        history.materials += _past_decisions(store, target, matrix, chosen)
    try:
        links = target.linked([r.ref for r in latest.values()])
    except ConnectorError as error:
        log.warning("improvements.read_failed", error=str(error))
        links = {}
    for service_key, past in sorted(latest.items()):
        history.materials.append(_previous_review(past, cycle))
        history.materials += [
            Material(
                key=f"improvement:{linked.key}",
                kind=MaterialKind.IMPROVEMENT,
                title=f"{linked.key} {linked.title}",
                number=linked.key,
                service_key=service_key,
                url=linked.url,
                open=True,
            )
            for linked in links.get(past.ref.key, ())
            if not linked.done
        ]
    return history


def latest_reviews(
    store: StateStore,
    target: TargetConnector,
    settings: Settings,
    cycle: Cycle,
    services: Sequence[str],
    *,
    every: Mapping[str, TicketRef] | None = None,
) -> dict[str, PastReview]:
    """Per service, its review ticket of the latest earlier cycle that has one."""
    review = settings.review
    count = LOOKBACK_YEARS * 12 // cycle.frequency.months
    earlier = earlier_cycles(cycle, count, review.cycle.start, review.period)
    ledger = store.ledger_rows(target.system)
    found = _from_ledger(ledger, earlier, services)
    # The ledger has a cycle's ticket, so it has that cycle's review tickets too.
    known = {c.id for c in earlier if _created(ledger.get(cycle_ticket_key(c.id)))}
    found += _from_cache(store, target, earlier, known, services, every)
    latest: dict[str, PastReview] = {}
    for past in found:
        if past.service_key not in latest or past.opens > latest[past.service_key].opens:
            latest[past.service_key] = past
    return latest


def _from_ledger(
    ledger: dict[str, LedgerRow], earlier: Sequence[Cycle], services: Sequence[str]
) -> list[PastReview]:
    # Keys may be hashed (long or non-label-safe service keys): look them up, don't parse.
    opens = {c.id: c.opens for c in earlier}
    reviews = review_keys(opens, services)
    return [
        PastReview(reviews[row.key][0], opens[reviews[row.key][0]], reviews[row.key][1], row.key,
                   TicketRef(row.ticket_key or "", row.ticket_id or "", row.ticket_url))
        for row in ledger.values()
        if row.key in reviews and row.kind == TicketKind.REVIEW.value and _created(row)
    ]  # fmt: skip


def _created(row: LedgerRow | None) -> bool:
    return row is not None and row.state == "created"


def _from_cache(
    store: StateStore,
    target: TargetConnector,
    earlier: Sequence[Cycle],
    known: set[str],
    services: Sequence[str],
    every: Mapping[str, TicketRef] | None,
) -> list[PastReview]:
    """Earlier cycles the ledger does not know: from the history cache, else the target."""
    cached = _cached(store, f"{target.system}:")
    found: list[PastReview] = []
    for cycle in earlier:
        if cycle.id in known:
            continue
        if f"looked:{cycle.id}" not in cached:
            if not _look_up(store, target, cycle, services, every):
                continue
            cached = _cached(store, f"{target.system}:")
        for key, body in cached.items():
            if body.get("cycle") == cycle.id and "ticket_key" in body:
                ref = TicketRef(body["ticket_key"], body["ticket_id"], body.get("url"))
                found.append(PastReview(cycle.id, cycle.opens, body["service_key"], key, ref))
    return found


def _cached(store: StateStore, prefix: str) -> dict[str, dict[str, Any]]:
    """The history cache's entries whose key starts with `prefix`, by the rest of their key."""
    return {
        r.key[len(prefix) :]: r.body for r in store.mirrored(HISTORY) if r.key.startswith(prefix)
    }


def _look_up(
    store: StateStore,
    target: TargetConnector,
    cycle: Cycle,
    services: Sequence[str],
    every: Mapping[str, TicketRef] | None,
) -> bool:
    """Find the cycle's review tickets and cache the answer (False: unreadable): in `every`
    ticket of ours when this cycle read them all (no call; a cold start into a project of
    10,000 services asked 200 searches per earlier cycle), else in the target by key."""
    reviews = review_keys([cycle.id], services)
    try:
        if every is not None:
            refs = {key: every[key] for key in reviews if key in every}
        else:
            refs = target.find(list(reviews)) if reviews else {}
    except FatalError:
        raise
    except ConnectorError as error:
        log.warning("history.read_failed", cycle=cycle.id, error=str(error))
        return False
    system = target.system
    records = [
        MirrorRecord(
            stream=HISTORY,
            key=f"{system}:{key}",
            body={"cycle": cycle.id, "service_key": reviews[key][1], "ticket_key": ref.key,
                  "ticket_id": ref.id, "url": ref.url},
            service_key=reviews[key][1],
        )
        for key, ref in refs.items()
        if key in reviews
    ]  # fmt: skip
    marker = {"cycle": cycle.id, "found": len(records)}
    records.append(MirrorRecord(stream=HISTORY, key=f"{system}:looked:{cycle.id}", body=marker))
    store.store_page(system, HISTORY, records, None)
    log.info("history.looked_up", cycle=cycle.id, reviews=len(records) - 1,
             read="ticket book" if every is not None else "target")  # fmt: skip
    return True


def _held_on(
    store: StateStore, target: TargetConnector, reviews: Sequence[PastReview]
) -> dict[str, date]:
    """When each earlier review was done (its review ticket's resolution date), by key.

    A done review's date does not change, so it is kept in the history cache and read from the
    target once; a review whose ticket is not done (or unreadable) counts from its cycle's
    opening day, as before.
    """
    prefix = f"{target.system}:held:"
    cached = {
        key: date.fromisoformat(str(body["on"])) for key, body in _cached(store, prefix).items()
    }
    unknown = [r for r in reviews if r.key not in cached]
    if not unknown:
        return cached
    try:
        states = target.state([r.ref for r in unknown])
    except FatalError:
        raise
    except ConnectorError as error:
        log.warning("history.read_failed", error=str(error))
        return cached
    records: list[MirrorRecord] = []
    for past in unknown:
        state = states.get(past.ref.key)
        if state is not None and state.done and state.resolved is not None:
            cached[past.key] = state.resolved.date()
            body = {"on": cached[past.key].isoformat()}
            key = f"{prefix}{past.key}"
            records.append(MirrorRecord(HISTORY, key, body, service_key=past.service_key))
    if records:
        store.store_page(target.system, HISTORY, records, None)
    return cached


def _past_decisions(
    store: StateStore, target: TargetConnector, matrix: RaciMatrix, reviews: Sequence[PastReview]
) -> list[Material]:
    """The decisions people recorded in these earlier reviews' tickets (the review ticket and
    its activity sub-tasks, as the meeting reads them), as materials of the new packs.

    A done review's decisions are read once and kept in the history cache; an open one's are
    read again each cycle (one bulk read with comments for all of them)."""
    prefix = f"{target.system}:decided:"
    cached = {
        key: list(body.get("decisions") or []) for key, body in _cached(store, prefix).items()
    }
    unknown = [r for r in reviews if r.key not in cached]
    if unknown:
        try:
            cached.update(_read_decisions(store, target, matrix, unknown, prefix))
        except FatalError:
            raise
        except ConnectorError as error:
            log.warning("history.decisions_read_failed", error=str(error))
    materials: list[Material] = []
    for past in reviews:
        for number, row in enumerate(cached.get(past.key, ())):
            recorded, author, text, policy, ticket, url = row
            marked = "(policy) " if policy else ""
            materials.append(
                Material(
                    key=f"decision:{past.key}:{number}",
                    kind=MaterialKind.PREVIOUS_DECISION,
                    title=f"{recorded[:10]} {marked}{text} ({author}, {ticket})",
                    service_key=past.service_key,
                    url=url,
                    open=False,
                )
            )
    return materials


def _read_decisions(
    store: StateStore,
    target: TargetConnector,
    matrix: RaciMatrix,
    reviews: Sequence[PastReview],
    prefix: str,
) -> dict[str, list[list[Any]]]:
    """Read the reviews' tickets with comments; cache the decisions of the done ones."""
    ledger = store.ledger_rows(target.system)
    activities = [a.id for a in matrix.in_scope(Scope.SERVICE)]
    tickets: dict[str, list[str]] = {  # review key -> its tickets' keys, review first
        past.key: [past.key, *(activity_ticket_key(past.cycle, a, past.service_key)
                               for a in activities)]
        for past in reviews
    }  # fmt: skip
    refs = {past.key: past.ref for past in reviews}
    for keys in tickets.values():
        for key in keys[1:]:
            row = ledger.get(key)
            if row is not None and row.state == "created" and row.ticket_key:
                refs[key] = TicketRef(row.ticket_key, row.ticket_id or "", row.ticket_url)
    missing = [k for keys in tickets.values() for k in keys if k not in refs]
    if missing:
        refs.update(target.find(missing))
    states = target.state(list(refs.values()), comments=True)
    found: dict[str, list[list[Any]]] = {}
    records: list[MirrorRecord] = []
    for past in reviews:
        decisions: list[Decision] = []
        for key in tickets[past.key]:
            ref = refs.get(key)
            state = states.get(ref.key) if ref is not None else None
            if ref is None or state is None:
                continue
            for comment in state.comments:
                made = None if comment.ours else decision_from(
                    comment.text, author=comment.author, recorded=comment.created,
                    ticket=ref.key, url=ref.url,
                )  # fmt: skip
                if made is not None:
                    decisions.append(made)
        decisions.sort(key=lambda d: (d.recorded, d.ticket, d.text))
        rows = [
            [d.recorded.isoformat(), d.author, d.text, d.policy, d.ticket, d.url] for d in decisions
        ]
        found[past.key] = rows
        review = states.get(past.ref.key)
        if review is not None and review.done:
            body = {"decisions": rows}
            records.append(MirrorRecord(HISTORY, f"{prefix}{past.key}", body, past.service_key))
    if records:
        store.store_page(target.system, HISTORY, records, None)
    log.info("history.decisions_read", reviews=len(reviews), cached=len(records))
    return found


def _previous_review(past: PastReview, cycle: Cycle) -> Material:
    months = months_between(past.opens, cycle.opens)
    return Material(
        key=f"review:{past.key}",
        kind=MaterialKind.PREVIOUS_REVIEW,
        title=f"Service review {past.cycle}, {months} months before this cycle",
        number=past.ref.key,
        service_key=past.service_key,
        url=past.ref.url,
        open=False,
    )
