"""Reconcile desired tickets with the ledger and the target, then apply: the idempotency protocol.

For every ticket key (DESIGN.md "Idempotency"):
1. record the intent in the ledger (key, spec hash) and commit;
2. if the ledger has no ticket for the key, look the key up in the target (the connector copes
   with search index lag);
3. mark the keys `sending` (with the time), create in bulk where the target allows, with the key
   inside the create request;
4. record the ticket; commit.
A failed create is never retried blindly. One the target refused or never received is `failed`:
the next attempt starts with a lookup. One whose outcome is unknown (sent, then a timeout, a
reset, a 5xx; or a process killed while `sending`) is **in doubt**: the target may still finish
it after we stopped waiting, and its search may lag. An in-doubt key is looked up every cycle
(and adopted when found) but not created again until a lookup made after the target's
`quarantine_seconds`, counted from when it was sent, proves it absent. Updates happen only when
the spec hash changed, never on a frozen ticket. Parents are applied before their children; a
child whose parent does not exist waits for the next run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol, runtime_checkable

import structlog

from connectors import (
    ConnectorError,
    CreateResult,
    FatalError,
    TargetConnector,
    TicketRef,
    outcome_unknown,
)
from connectors.crashpoints import crash_point
from review import Document, Person, TicketSpec
from sync.state import LedgerRow, StateStore
from sync.steps import FollowUps, read_ahead

log = structlog.get_logger("slm_sync.reconcile")
DEFAULT_QUARANTINE = 120.0  # for target plugins that do not say how long a create may take

ChangeNote = Callable[[TicketSpec, LedgerRow], Document | None]


@runtime_checkable
class _FallibleDirectory(Protocol):
    """A target's people directory that knows whose lookup failed this cycle."""

    def any_failed(self, people: Iterable[Person | None]) -> bool: ...


class Action(StrEnum):
    """What reconciling decided for one ticket."""

    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    ADOPT = "adopt"  # found in the target by key although the ledger did not know it
    WAIT = "wait"  # parent missing; next run
    IN_DOUBT = "in_doubt"  # a create's outcome is unknown: quarantined, looked up again later
    LEASED = "leased"  # another replica works on this ticket's unit


@dataclass(frozen=True)
class Outcome:
    """What happened (or, in a dry run, would happen) to one ticket."""

    key: str
    kind: str
    title: str
    action: Action
    assignee: str | None
    ticket: str | None = None
    error: str | None = None


@dataclass
class ApplySummary:
    """Counts for `--json` and metrics, with every outcome and every failure."""

    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, action: Action, *, failed: bool = False) -> int:
        """How many outcomes had `action` (and failed, or not)."""
        return sum(
            1 for o in self.outcomes if o.action is action and (o.error is not None) == failed
        )

    @property
    def failed(self) -> list[Outcome]:
        """Outcomes that did not reach their goal."""
        return [o for o in self.outcomes if o.error is not None]

    def as_counts(self) -> dict[str, int]:
        """The created / updated / unchanged / failed integers of the CLI contract."""
        return {
            "created": self.count(Action.CREATE),
            "updated": self.count(Action.UPDATE) + self.count(Action.ADOPT),
            "unchanged": self.count(Action.UNCHANGED),
            "failed": len(self.failed),
            "in_doubt": self.count(Action.IN_DOUBT, failed=True),
        }


def spec_hash(spec: TicketSpec) -> str:
    """A stable fingerprint of everything a ticket must show."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


@dataclass
class SpecHashes:
    """`spec_hash` of the specs applied, kept for the next cycles: a spec that is the same
    object as the one hashed before (a review whose plan was reused, `review.plan.PlanMemo`;
    specs are frozen) is not serialised and hashed again."""

    kept: dict[str, tuple[TicketSpec, str]] = field(default_factory=dict)
    computed: int = 0  # hashes computed (not reused) since the start (tests count them)

    def of(self, spec: TicketSpec) -> str:
        """The spec's hash, reused when this very spec object was hashed before."""
        kept = self.kept.get(spec.key)
        if kept is None or kept[0] is not spec:
            self.computed += 1
            kept = self.kept[spec.key] = (spec, spec_hash(spec))
        return kept[1]

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget the specs of keys no longer planned (a whole cycle's tickets)."""
        wanted = set(keys)
        for key in [k for k in self.kept if k not in wanted]:
            del self.kept[key]


def settled(
    specs: Sequence[TicketSpec],
    ledger: dict[str, LedgerRow],
    hashes: SpecHashes,
    watching: set[str],
) -> list[Outcome] | None:
    """The outcomes of applying `specs` (one unit: a root ticket and its sub-tasks) when
    `Reconciler.apply` would find nothing to do: every ticket created as the ledger says,
    frozen or showing its spec (the applied hash), no watcher pending (`watching`). None when
    one of them has work (a create, a lookup, an update, a step): the unit is applied."""
    outcomes = []
    for spec in specs:
        row = ledger.get(spec.key)
        if row is None or row.state != "created" or spec.key in watching:
            return None
        if _updates(row, hashes.of(spec)):
            return None
        outcomes.append(_outcome(spec, Action.UNCHANGED, ticket=row.ticket_key or ""))
    return outcomes


def levels(specs: Sequence[TicketSpec]) -> list[list[TicketSpec]]:
    """Specs grouped parents-first: level 0 has no parent in the plan, level n a parent in n-1."""
    by_key = {s.key: s for s in specs}
    depth: dict[str, int] = {}

    def depth_of(spec: TicketSpec) -> int:
        if spec.key not in depth:
            parent = by_key.get(spec.parent_key or "")
            depth[spec.key] = 0 if parent is None else depth_of(parent) + 1
        return depth[spec.key]

    grouped: dict[int, list[TicketSpec]] = {}
    for spec in specs:
        grouped.setdefault(depth_of(spec), []).append(spec)
    return [grouped[d] for d in sorted(grouped)]


@dataclass
class Reconciler:
    """Applies a plan to one target, keeping the ledger true at every step."""

    target: TargetConnector
    store: StateStore
    change_note: ChangeNote | None = None
    stop: Callable[[], None] = lambda: None  # raises to end the run at a safe point
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    followups: FollowUps | None = None  # watchers and change notes as protocol steps
    # The chart (file name, content) a ticket's description shows, if any: uploaded before the
    # update of an existing ticket, so that the update shows it (`FollowUps.stage`).
    charts: Callable[[TicketSpec], tuple[str, bytes] | None] | None = None
    hashes: SpecHashes = field(default_factory=SpecHashes)

    def __post_init__(self) -> None:
        if self.followups is None:
            self.followups = FollowUps.load(self.target, self.store)

    def apply(self, specs: Sequence[TicketSpec], *, dry_run: bool = False) -> ApplySummary:
        """Make the target match `specs`; with dry_run, only read and report."""
        summary = ApplySummary()
        # Read now, under the units' leases: another replica may have written these keys
        # since the cycle's steps read the ledger (`StateStore.held_ledger`).
        ledger = self.store.ledger_rows(self.target.system, fresh=True)
        # The tickets of these specs and of their parents (every lookup is by one of these
        # keys): not a ref for every ticket of the ledger per batch of units.
        wanted = {s.key for s in specs} | {s.parent_key for s in specs if s.parent_key}
        refs = {
            key: TicketRef(key=row.ticket_key or "", id=row.ticket_id or "", url=row.ticket_url)
            for key in wanted
            if (row := ledger.get(key)) is not None and row.state == "created"
        }
        for depth, level in enumerate(levels(specs)):
            self.stop()
            if depth:
                crash_point("between_parent_and_subtasks")
            self._apply_level(level, ledger, refs, summary, dry_run=dry_run)
        return summary

    def _apply_level(
        self,
        level: list[TicketSpec],
        ledger: dict[str, LedgerRow],
        refs: dict[str, TicketRef],
        summary: ApplySummary,
        *,
        dry_run: bool,
    ) -> None:
        unknown = [s for s in level if s.key not in refs]
        # A key with an intent may have been created moments ago (a create in doubt), so its
        # lookup waits out the search index. A key never intended can only come from an
        # earlier process (a lost ledger); the target knows how long to wait for that.
        intended = [s.key for s in unknown if s.key in ledger]
        fresh = [s.key for s in unknown if s.key not in ledger]
        found = self.target.find(intended, recent=True) if intended else {}
        found.update(self.target.find(fresh) if fresh else {})
        to_create: list[TicketSpec] = []
        for spec in unknown:
            if spec.parent_key and spec.parent_key not in refs and not dry_run:
                summary.outcomes.append(_outcome(spec, Action.WAIT, error="parent ticket missing"))
            elif spec.key in found:
                self._adopt(spec, found[spec.key], ledger, refs, summary, dry_run=dry_run)
            elif (doubt := self._quarantined(ledger.get(spec.key))) is not None:
                summary.outcomes.append(_outcome(spec, Action.IN_DOUBT, error=doubt))
            else:
                to_create.append(spec)
        self._create(to_create, refs, summary, dry_run=dry_run)
        existing = {
            spec.key: self.hashes.of(spec)
            for spec in level
            if spec.key in ledger and ledger[spec.key].state == "created" and spec.key in refs
        }
        if not dry_run:  # the tickets about to be updated, read in bulk where the target can
            due = [refs[k] for k, h in existing.items() if _updates(ledger[k], h)]
            read_ahead(self.target, due)
        for spec in level:
            self.stop()
            if spec.key in existing:
                self._refresh(
                    spec, ledger[spec.key], refs[spec.key], summary,
                    wanted=existing[spec.key], dry_run=dry_run,
                )  # fmt: skip

    def _quarantined(self, row: LedgerRow | None) -> str | None:
        """Why a key not found in the target may not be created yet (None: it may)."""
        if row is None or (since := row.in_doubt_since) is None:
            return None
        until = since + timedelta(seconds=self._quarantine())
        if self.clock() >= until:
            return None
        return (
            f"a create sent at {since:%H:%M:%S} UTC may still land ({row.error or 'no answer'}); "
            f"not sent again before {until:%H:%M:%S} UTC, when a lookup can prove it absent"
        )

    def _adopt(
        self,
        spec: TicketSpec,
        ref: TicketRef,
        ledger: dict[str, LedgerRow],
        refs: dict[str, TicketRef],
        summary: ApplySummary,
        *,
        dry_run: bool,
    ) -> None:
        """The ticket exists: an earlier run crashed before recording it, or the ledger was lost."""
        refs[spec.key] = ref
        known = ledger.get(spec.key)
        wanted = spec_hash(spec)
        if dry_run:
            summary.outcomes.append(_outcome(spec, Action.ADOPT, ticket=ref.key))
            return
        self.store.record_intent(
            self.target.system,
            spec.key,
            parent_key=spec.parent_key,
            kind=spec.kind,
            spec_hash=wanted,
        )
        made_from_this_spec = known is not None and known.spec_hash == wanted
        try:
            if not made_from_this_spec:
                self.target.update(ref, spec)
        except ConnectorError as error:
            self._fail(spec, error, summary)
            return
        self.store.record_created(
            self.target.system, spec.key, ticket_key=ref.key, ticket_id=ref.id,
            ticket_url=ref.url, applied_hash=wanted if made_from_this_spec else self._applied(spec),
        )  # fmt: skip
        self._steps().watch(spec.key, ref, spec)
        action = Action.UNCHANGED if made_from_this_spec else Action.ADOPT
        summary.outcomes.append(_outcome(spec, action, ticket=ref.key))
        log.info("ticket.adopted", key=spec.key, ticket=ref.key, updated=not made_from_this_spec)

    def _create(
        self,
        specs: list[TicketSpec],
        refs: dict[str, TicketRef],
        summary: ApplySummary,
        *,
        dry_run: bool,
    ) -> None:
        if not specs:
            return
        if dry_run:
            summary.outcomes.extend(_outcome(s, Action.CREATE) for s in specs)
            return
        for spec in specs:
            crash_point("before_intent")
            self.store.record_intent(
                self.target.system, spec.key, parent_key=spec.parent_key, kind=spec.kind,
                spec_hash=spec_hash(spec),
            )  # fmt: skip
            crash_point("after_intent")
        self.store.record_sending(self.target.system, [spec.key for spec in specs])
        try:
            results = self.target.create(specs, parents=refs)
            crash_point("after_create")
        except FatalError:
            raise
        except ConnectorError as error:
            doubt = outcome_unknown(error)
            results = [CreateResult(s.key, None, str(error), doubt) for s in specs]
        by_key = {r.spec_key: r for r in results}
        for spec in specs:
            self._record_create(spec, by_key.get(spec.key), refs, summary)

    def _record_create(
        self,
        spec: TicketSpec,
        result: CreateResult | None,
        refs: dict[str, TicketRef],
        summary: ApplySummary,
    ) -> None:
        if result is None or result.ref is None:
            error = (result.error if result else None) or "the target reported no result"
            if result is None or result.in_doubt:
                self._record_doubt(spec, error, summary)
                return
            self.store.record_failure(self.target.system, spec.key, error)
            summary.outcomes.append(_outcome(spec, Action.CREATE, error=error))
            log.warning("ticket.create_failed", key=spec.key, error=error)
            return
        ref = result.ref
        refs[spec.key] = ref
        self.store.record_created(
            self.target.system, spec.key, ticket_key=ref.key, ticket_id=ref.id,
            ticket_url=ref.url, applied_hash=self._applied(spec),
        )  # fmt: skip
        crash_point("after_record")
        self._steps().watch(spec.key, ref, spec)
        summary.outcomes.append(_outcome(spec, Action.CREATE, ticket=ref.key))
        log.info("ticket.created", key=spec.key, ticket=ref.key, kind=spec.kind)

    def _record_doubt(self, spec: TicketSpec, error: str, summary: ApplySummary) -> None:
        self.store.record_doubt(self.target.system, spec.key, error)
        wait = self._quarantine()
        reason = (
            f"the create may have reached {self.target.system} ({error}); it is looked up every "
            f"cycle and sent again only if still absent after {wait:.0f} s"
        )
        summary.outcomes.append(_outcome(spec, Action.IN_DOUBT, error=reason))
        log.warning("ticket.create_in_doubt", key=spec.key, error=error, quarantine_s=wait)

    def _refresh(
        self,
        spec: TicketSpec,
        row: LedgerRow,
        ref: TicketRef,
        summary: ApplySummary,
        *,
        wanted: str,
        dry_run: bool,
    ) -> None:
        if not _updates(row, wanted):
            if not dry_run and self._steps().watchers_pending(spec.key):
                self._steps().watch(spec.key, ref, spec)
            summary.outcomes.append(_outcome(spec, Action.UNCHANGED, ticket=ref.key))
            return
        if dry_run:
            summary.outcomes.append(_outcome(spec, Action.UPDATE, ticket=ref.key))
            return
        chart = self.charts(spec) if self.charts is not None else None
        if chart is not None:
            self._steps().stage(spec.key, ref, *chart)
        try:
            self.target.update(ref, spec)
            self._steps().rendered(spec.key)
            note = self.change_note(spec, row) if self.change_note else None
            if note is not None:
                self._steps().comment(spec.key, ref, note, wanted)
            self._steps().watch(spec.key, ref, spec)
        except FatalError:
            raise
        except ConnectorError as error:
            self._fail(spec, error, summary, action=Action.UPDATE)
            return
        applied = self._applied(spec)
        if applied:
            self.store.record_applied(self.target.system, spec.key, applied_hash=applied)
        summary.outcomes.append(_outcome(spec, Action.UPDATE, ticket=ref.key))
        log.info("ticket.updated", key=spec.key, ticket=ref.key)

    def _applied(self, spec: TicketSpec) -> str:
        """The spec hash to record as applied: none ("") while a person of the ticket could not
        be looked up this cycle (it was written with the fallback), so the next cycle updates
        it with the real people."""
        people = getattr(self.target, "people", None)
        involved = [spec.assignee, spec.accountable, *spec.consulted, *spec.informed]
        if isinstance(people, _FallibleDirectory) and people.any_failed(involved):
            log.info("ticket.people_pending", key=spec.key)
            return ""
        return spec_hash(spec)

    def _quarantine(self) -> float:
        """The target's quarantine for creates in doubt (120 s for a plugin that names none)."""
        return float(getattr(self.target, "quarantine_seconds", DEFAULT_QUARANTINE))

    def _steps(self) -> FollowUps:
        assert self.followups is not None  # set in __post_init__
        return self.followups

    def _fail(
        self,
        spec: TicketSpec,
        error: ConnectorError,
        summary: ApplySummary,
        *,
        action: Action = Action.ADOPT,
    ) -> None:
        self.store.record_failure(self.target.system, spec.key, str(error))
        summary.outcomes.append(_outcome(spec, action, error=str(error)))
        log.warning("ticket.failed", key=spec.key, action=action.value, error=str(error))


def _updates(row: LedgerRow, wanted: str) -> bool:
    """Whether the ticket of `row` is to be updated to the spec hashed `wanted`."""
    return not row.frozen and row.applied_hash != wanted


def leased(spec: TicketSpec) -> Outcome:
    """The outcome of a ticket another replica is handling in this cycle."""
    return _outcome(spec, Action.LEASED)


def _outcome(
    spec: TicketSpec, action: Action, *, ticket: str | None = None, error: str | None = None
) -> Outcome:
    return Outcome(
        key=spec.key,
        kind=spec.kind.value,
        title=spec.title,
        action=action,
        assignee=spec.assignee.email if spec.assignee else None,
        ticket=ticket,
        error=error,
    )
