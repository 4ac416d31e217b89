"""One sync cycle: pull → map → review plan → reconcile with ledger and target → apply → record.

A failure on one ticket or one service does not stop the others; the summary says what failed and
why. A fatal error of a system (authentication, TLS) ends the run with that error. The engine is
built once per process (`Engine.from_settings`) and `run_once` is called per interval.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, cast

import structlog

from config import ConfigError, Settings, load_raci
from connectors import (
    ConnectorError,
    FatalError,
    SourceConnector,
    Stream,
    TargetConnector,
    TicketRef,
    record_links,
)
from connectors.registry import ConnectorPlugin, make_target, plugin
from mapping import SystemMapping, load_mappings
from mapping.allocation import spaced_collections
from review import (
    Agreement,
    AttainmentStatus,
    Cycle,
    Document,
    Person,
    RaciMatrix,
    ReviewPack,
    TicketKind,
    TicketSpec,
    activity_ticket_key,
    agreement_label,
    build_plan,
    review_ticket_key,
)
from review import document as doc
from review.cycle_summary import (
    LESSONS_ACTIVITY,
    POLICIES_ACTIVITY,
    lessons_learned_document,
    update_policies_document,
)
from review.meeting import frozen_note
from review.model import Meeting
from review.plan import PlanMemo
from sync.build import (
    Charts,
    ReviewBuild,
    build_review,
    chart_name,
    current_cycle,
    role_holders,
)
from sync.closing import close_finished
from sync.cycle_flow import (
    CycleFlow,
    CyclePhase,
    CycleState,
    Expected,
    adopt_tickets,
    closing_activities,
)
from sync.duplicates import Duplicate, DuplicateAudit
from sync.history import History, carried_over
from sync.kept_packs import keep_packs, kept_build
from sync.leases import LeaseLost, WorkLeases, units
from sync.meeting import CycleRecord, MeetingReader, PlanCache
from sync.metrics import Metrics
from sync.pull import PullSummary, pull, store_announced
from sync.reconcile import (
    Action,
    ApplySummary,
    ChangeNote,
    Outcome,
    Reconciler,
    SpecHashes,
    leased,
    settled,
)
from sync.source_state import SourceStateKeeper
from sync.state import LedgerRow, MirrorRecord, StateStore
from sync.steps import FollowUps, ReadsAhead
from sync.ticket_book import TicketBook
from sync.webhooks import WorkItem

log = structlog.get_logger("slm_sync.engine")
PACK_STATE = "pack_state"
FEW_PACKS = 20  # up to this many packs, their reviews' kept states are read one by one
MEETING_STATE = "meeting_state"  # what the last change note knew of each review's meeting
# A target's status in a change note, as people say it: now (in full) and before (short).
STATUS_NOW = {
    AttainmentStatus.MET.value: "meets its target",
    AttainmentStatus.AT_RISK.value: "at risk of missing its target",
    AttainmentStatus.MISSED.value: "missed its target",
    AttainmentStatus.NO_DATA.value: "has no records in the period",
}
STATUS_BEFORE = {
    AttainmentStatus.MET.value: "met",
    AttainmentStatus.AT_RISK.value: "at risk",
    AttainmentStatus.MISSED.value: "missed",
    AttainmentStatus.NO_DATA.value: "no records",
}
# Units (root tickets with their sub-tasks) leased and applied together: 50 review tickets fill
# one Jira bulk call, their sub-tasks a few more.
UNITS_PER_APPLY = 50
# A webhook-triggered run reads up to this many seconds ago: the current second may still be
# receiving writes, so it stays for the next run (the cursor must not pass a half-written second).
PROMPT_SKEW_SECONDS = 2


class Interrupted(Exception):
    """A stop was requested; the run ended at a safe point (everything written is recorded)."""


@dataclass
class RunResult:
    """What one run did: pulled records, the cycle phase, and the apply summary."""

    pulled: PullSummary
    phase: CyclePhase
    build: ReviewBuild
    summary: ApplySummary
    tickets: tuple[TicketSpec, ...]
    dry_run: bool
    duplicates: list[Duplicate] = field(default_factory=list)
    # A webhook's cycle: the services whose reviews it rebuilt alone (None: a whole cycle).
    targeted: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        """The `--json` object: integer counts plus what failed and why."""
        return {
            "cycle": self.build.cycle.id,
            "cycle_state": self.phase.state.value,
            "selection": list(self.phase.selection),
            "dry_run": self.dry_run,
            "records_read": dict(self.pulled.read),
            "records_skipped": dict(self.pulled.skipped),
            "gaps_without_service": [g.model_dump(mode="json") for g in self.build.unplaced],
            **self.summary.as_counts(),
            "duplicates": [d.as_json() for d in self.duplicates],
            "failures": [
                {"key": o.key, "title": o.title, "action": o.action.value, "error": o.error}
                for o in self.summary.failed
            ],
            "tickets": [
                {
                    "key": o.key,
                    "kind": o.kind,
                    "title": o.title,
                    "action": o.action.value,
                    "ticket": o.ticket,
                    "assignee": o.assignee,
                }
                for o in self.summary.outcomes
            ],
        }


@dataclass
class Engine:
    """Runs cycles for one source, one target and one state store."""

    settings: Settings
    store: StateStore
    source: SourceConnector
    target: TargetConnector
    mappings: SystemMapping
    raci: RaciMatrix
    metrics: Metrics | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    stop: threading.Event = field(default_factory=threading.Event)
    on_page: Callable[[str, int], None] | None = None  # progress: records read
    on_write: Callable[[int, int], None] | None = None  # progress: tickets done of planned
    leases: WorkLeases = field(init=False)
    book: TicketBook = field(init=False)  # our tickets' states, read incrementally
    # the plan the meetings were last read against, reused while the services are the same
    meeting_plans: PlanCache = field(default_factory=PlanCache, init=False)
    # the last cycle's review build: packs whose inputs did not change are reused from it
    last_build: ReviewBuild | None = field(default=None, init=False)
    # the source's kept state (CMDB mirror) as last loaded from or saved to the store
    source_state: SourceStateKeeper = field(default_factory=SourceStateKeeper, init=False)
    # the specs' hashes of the last cycle, reused for the same spec objects (reused plans)
    hashes: SpecHashes = field(default_factory=SpecHashes, init=False)
    # each selected review's tickets as last planned, reused while their inputs are the same
    plans: PlanMemo = field(default_factory=PlanMemo, init=False)
    units_applied: int = field(default=0, init=False)  # units given to the reconciler (tests)
    _charts: Charts | None = field(default=None, init=False, repr=False)  # this cycle's
    # `target_names` of the agreements it was last made from (the same tuple while they do not
    # change: an idle cycle reuses the build's): the change note and the pack states use it
    _names: tuple[Sequence[Agreement], dict[str, str]] | None = field(
        default=None, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.leases = WorkLeases(self.store, seconds=self.settings.sync.lease_seconds)
        self.book = TicketBook(
            self.store,
            self.target,
            margin_seconds=self.settings.sync.ticket_read_margin_seconds,
            full_every_seconds=self.settings.sync.ticket_full_read_seconds,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, store: StateStore, *, metrics: Metrics | None = None
    ) -> Engine:
        """Build the configured connectors, mappings and RACI matrix."""
        chosen, mappings = source_mappings(settings)
        assert chosen.source is not None
        return cls(
            settings=settings,
            store=store,
            source=chosen.source(settings),
            target=make_target(settings),
            mappings=mappings,
            raci=load_raci(settings.review.raci_file),
            metrics=metrics,
        )

    def run_once(
        self, *, dry_run: bool = False, full: bool = False, prompt: bool = False
    ) -> RunResult:
        """One cycle; with dry_run nothing is written to the target (reads only).

        `prompt` (a webhook woke us, see also `run_prompted`) reads up to a few seconds ago
        instead of the configured clock skew, so the change that triggered the run is in it.
        Every run that may write is recorded in the `runs` table with its outcome and counts.
        """
        return self._recorded(dry_run=dry_run, full=full, prompt=prompt, work=())

    def run_prompted(self, work: Sequence[WorkItem], *, dry_run: bool = False) -> RunResult:
        """The cycle webhooks ask for. When every item names what changed (a task_sla or
        service record the source reads by sys_id, a Jira ticket of a review), exactly those
        records are read and stored without moving the stream cursors, and only the reviews
        they belong to are rebuilt and applied (`RunResult.targeted` names their services);
        otherwise a whole prompted cycle (`run_once(prompt=True)`)."""
        return self._recorded(dry_run=dry_run, full=False, prompt=True, work=work)

    def _recorded(
        self, *, dry_run: bool, full: bool, prompt: bool, work: Sequence[WorkItem]
    ) -> RunResult:
        if dry_run:
            with self.store.held_ledger(), self._cycle_scope():
                return self._run(dry_run=True, full=full, prompt=prompt, work=work)
        run_id = self.store.start_run()
        try:
            # The ledger is read once for the cycle's steps (and after each write of ours):
            # not a dozen times over every ticket's row. The next cycle reads it anew.
            with self.store.held_ledger(), self._cycle_scope():
                result = self._run(dry_run=False, full=full, prompt=prompt, work=work)
        except BaseException as error:
            self.store.finish_run(run_id, "failed", {"error": f"{type(error).__name__}: {error}"})
            raise
        status = "ok" if not result.summary.failed else "partial"
        self.store.finish_run(run_id, status, result.summary.as_counts())
        return result

    @contextmanager
    def _cycle_scope(self) -> Iterator[None]:
        """The ticket book answers the target's reads during the cycle only (`TicketBook`),
        and the cycle's charts are drawn by its end (`Charts.settle`: those still queued are
        dropped when it failed or was stopped). Cyclic garbage collections are spaced out
        over the cycle (`mapping.allocation`): the build's agreements and attainments are
        long-lived, and whole-heap collections walked them again and again."""
        ended = False
        try:
            with spaced_collections(freeze=True):  # the cycle's bulk phases (`mapping.allocation`)
                yield
            ended = True
        finally:
            self.book.close()
            charts, self._charts = self._charts, None
            if charts is not None:
                charts.settle(drop_queued=not ended)

    def _run(
        self, *, dry_run: bool, full: bool, prompt: bool, work: Sequence[WorkItem] = ()
    ) -> RunResult:
        now = self.clock()
        directory = _people_directory(self.target)
        if directory is not None:  # preloading starts the directory's cycle
            directory.preload(self.store.people_cache(self.target.system))
        else:
            _start_people_cycle(self.target)
        if isinstance(self.target, ReadsAhead):  # what the last cycle read ahead is old now
            self.target.forget_read_ahead()
        cycle = current_cycle(self.settings, now.date())
        announced = self._announced(work, cycle) if prompt and work and not full else None
        if announced is not None:
            pulled, only = announced
        else:
            only = None
            skew = self.settings.servicenow.clock_skew_seconds
            until = now - timedelta(seconds=min(skew, PROMPT_SKEW_SECONDS) if prompt else skew)
            # Another replica's pull is waited for while it renews; only a stop ends the wait.
            with self.leases.hold_waiting(f"pull:{self.source.system}", stop=self.stop) as ours:
                if not ours:
                    raise Interrupted
                pulled = pull(
                    self.source, self.mappings, self.store, until=until, full=full,
                    on_page=self._page_read, on_wait=self._check_stop, keeper=self.source_state,
                )  # fmt: skip
        self._count_reads(pulled)
        self.book.refresh(fresh=[item.key for item in work if item.kind == "ticket"])
        flow = CycleFlow(self.store, self.target, self.raci, self.settings.review.selection)
        phase = flow.phase(cycle)
        history = self._carried_over(cycle, phase, only)
        reader = self._meeting_reader(cycle, phase, only)
        build = build_review(
            self.store,
            self.settings,
            today=now.date(),
            selection=phase.selection,
            resolve=self._unresolved,
            carried=history.materials,
            last_reviewed=history.last_reviewed,
            meetings=reader.meetings,
            links=record_links(self.source),
            only=only,
            previous=self._previous_build(cycle),
            charts=only is None,  # an announced cycle shows no new chart: the next poll does
        )
        self._charts = build.charts  # settled when the cycle ends (`_cycle_scope`)
        self._keep_build(build, partial=only is not None)
        if not dry_run and only is not None:  # a whole build's are kept once its charts are
            keep_packs(self.store, build, whole=False)
        plan = build_plan(
            build.cycle,
            self.raci,
            role_holders(self.settings),
            build.services,
            phase.selection,
            packs=build.packs,
            candidates=build.candidates,
            activity_bodies=self._closing_bodies(build, phase, reader.record),
            selection_status=phase.selection_status,
            memo=self.plans,
        )
        wanted = flow.wanted(build.cycle, phase, plan.tickets)
        tickets = tuple(_with_people_due(_readable(wanted, phase, reader.record), reader.record))
        if only is not None:
            return self._run_announced(build, phase, reader, tickets, pulled, only, dry_run)
        if not dry_run:
            frozen = sorted(_frozen_now(cycle, phase, reader))
            for key in (*frozen, *_finished_closing(self.raci, cycle, phase)):
                self.store.freeze(self.target.system, key)
        self._check_stop()
        self.hashes.keep_only(t.key for t in tickets)
        followups = FollowUps.load(self.target, self.store)
        summary = self._apply(tickets, build, followups, dry_run=dry_run, charts=not prompt)
        duplicates: list[Duplicate] = []
        if not dry_run:
            self._freeze_packs(build, summary, reader)
            if not prompt:
                self._attach_charts(build, summary, followups, tickets)
            # After the writes: the charts are drawn while they wait on the target (`Charts`).
            keep_packs(self.store, build, whole=True)
            closable = flow.closable_after_apply(build.cycle, phase)
            close_finished(self.target, self.store, closable, followups.rows)
            flow.tell_unmatched(build.cycle, phase)
            duplicates = self._audit_duplicates()
            self._remember_packs(build)
            if directory is not None:
                self.store.remember_people(self.target.system, dict(directory.cache))
        self._count_tickets(summary)
        return RunResult(pulled, phase, build, summary, tickets, dry_run, duplicates)

    def _announced(
        self, work: Sequence[WorkItem], cycle: Cycle
    ) -> tuple[PullSummary, tuple[str, ...]] | None:
        """Read the records the webhooks name (one call per batch of them, cursors untouched)
        and name the services whose reviews they change; None when an item does not say enough
        (a Jira ticket that is no review's, a source that cannot read records by id): a whole
        cycle then."""
        read_records = getattr(self.source, "read_records", None)
        if not callable(read_records) and any(item.kind != "ticket" for item in work):
            return None
        services: set[str] = set()
        tickets = [item.key for item in work if item.kind == "ticket"]
        if tickets:
            reviews = self._reviews_of_tickets(tickets, cycle)
            if reviews is None:
                return None
            services.update(reviews)
        named: dict[Stream, list[str]] = {}
        for item in work:
            if item.kind == "ticket":
                continue
            stream = Stream.SLA_RECORDS if item.kind == "sla_record" else Stream.SERVICES
            if not self.mappings.has(stream.value):
                return None
            named.setdefault(stream, []).append(item.key)
            services.add(item.service or item.key)
        summary = PullSummary()
        system = self.source.system
        for stream, keys in named.items():  # one call per batch of records (sys_idIN)
            assert read_records is not None
            for page in read_records(stream, keys):
                if self.mappings.has(page.stream.value):
                    mirrored = store_announced(page, self.mappings, self.store, system, summary)
                    services.update(mirrored)
        log.info("cycle.announced", read=dict(summary.read), services=len(services))
        return summary, tuple(sorted(services))

    def _reviews_of_tickets(self, keys: Sequence[str], cycle: Cycle) -> set[str] | None:
        """The services whose review (or one of its sub-tasks) these Jira issues are; None when
        one of them is not (the cycle's ticket, an activity of the cycle, an unknown issue)."""
        rows = self.store.ledger_rows(self.target.system)
        by_ticket = {row.ticket_key: row for row in rows.values() if row.ticket_key}
        services = [str(r.body.get("key") or r.key) for r in self.store.mirrored("service")]
        reviews = {review_ticket_key(cycle.id, key): key for key in services}
        found: set[str] = set()
        for key in keys:
            row = by_ticket.get(key)
            while row is not None and row.key not in reviews and row.parent_key:
                row = rows.get(row.parent_key)
            if row is None or row.key not in reviews:
                return None
            found.add(reviews[row.key])
        return found

    def _run_announced(
        self,
        build: ReviewBuild,
        phase: CyclePhase,
        reader: MeetingReader,
        tickets: Sequence[TicketSpec],
        pulled: PullSummary,
        only: tuple[str, ...],
        dry_run: bool,
    ) -> RunResult:
        """Apply the announced services' reviews alone (ticket, sub-tasks, change comment);
        the cycle-wide steps (freezing, closing, duplicate audit) and the charts wait for the
        poll (see `_apply`)."""
        chosen = set(only)
        mine = tuple(t for t in tickets if t.service_key in chosen)
        # As in a whole cycle (see `_run`), for these reviews alone.
        reviews = {review_ticket_key(build.cycle.id, key) for key in chosen}
        if not dry_run:
            for key in sorted(_frozen_now(build.cycle, phase, reader) & reviews):
                self.store.freeze(self.target.system, key)
        self._check_stop()
        followups = FollowUps.load(self.target, self.store)
        summary = self._apply(mine, build, followups, dry_run=dry_run, charts=False)
        if not dry_run:
            self._freeze_packs(build, summary, reader)
            self._remember_packs(build)
        self._count_tickets(summary)
        log.info("cycle.announced_done", services=len(only), reviews=len(build.packs))
        return RunResult(pulled, phase, build, summary, mine, dry_run, targeted=only)

    def _previous_build(self, cycle: Cycle) -> ReviewBuild | None:
        """The build whose packs this cycle may reuse: this process's last one; after a start,
        or when another replica pulled since (the source state was reloaded), the packs kept
        in the store (`sync.kept_packs`)."""
        if self.last_build is None or self.source_state.reloaded:
            self.source_state.reloaded = False
            self.last_build = kept_build(self.store, cycle) or self.last_build
        return self.last_build

    def _keep_build(self, build: ReviewBuild, *, partial: bool) -> None:
        """The build the next cycle compares its packs' fingerprints with; a partial build (an
        announced cycle's) adds its packs to the last whole one instead of replacing it."""
        last = self.last_build
        if not partial or last is None or last.cycle.id != build.cycle.id:
            self.last_build = build
            return
        for key in build.packs:
            last.packs[key] = build.packs[key]
            last.fingerprints[key] = build.fingerprints[key]
            if key in build.charts:
                last.charts[key] = build.charts[key]
            else:  # not drawn: the next cycle builds this pack again, and draws its chart
                last.charts.discard(key)

    def _audit_duplicates(self) -> list[Duplicate]:
        """The cycle's duplicate audit; its failure is logged, never the run's."""
        audit = DuplicateAudit(
            self.target,
            self.store,
            resolve=self.settings.sync.resolve_duplicates,
            listed=self.book.listing(),
        )
        try:
            found = audit.run()
        except FatalError:
            raise
        except ConnectorError as error:
            log.warning("duplicates.audit_failed", error=str(error))
            return []
        if self.metrics is not None:
            self.metrics.duplicate_tickets.set(len(found))
        return found

    def _apply(
        self,
        tickets: Sequence[TicketSpec],
        build: ReviewBuild,
        followups: FollowUps,
        *,
        dry_run: bool,
        charts: bool = True,
    ) -> ApplySummary:
        """Apply unit by unit, each under its lease (a dry run needs none).

        Without `charts` (a prompted cycle) the reviews' charts stay as they are: an update
        shows the chart its ticket showed, and the next regular cycle replaces it (upload,
        one description write, the old file removed; no second change comment). A webhook's
        cycle so writes the pack and its change comment only: a burst of 50 announced
        breaches costs two calls per review (with the tickets read ahead, 50 per search), not
        six (a read of the ticket, the chart's listing, upload and removal besides)."""
        reconciler = Reconciler(
            self.target,
            self.store,
            change_note=self._change_note(build),
            stop=self._safe_point,
            followups=followups,
            charts=_charts_of(build) if charts else None,
            hashes=self.hashes,
        )
        if dry_run:
            return reconciler.apply(tickets, dry_run=True)
        summary = ApplySummary()
        # A unit the ledger shows done (created, showing its spec, no step pending) has nothing
        # to apply: its outcomes are told without a lease or the reconciler's reads. What
        # people did in its tickets reaches it through the plan (the ticket book is read
        # first), which changes its specs.
        ledger = self.store.ledger_rows(self.target.system)
        watching = followups.keys_with_watchers_pending()
        pending: list[tuple[str, list[TicketSpec]]] = []
        for unit, specs in units(tickets).items():
            done = settled(specs, ledger, self.hashes, watching)
            if done is None:
                pending.append((unit, specs))
            else:
                summary.outcomes.extend(done)
        self.units_applied += len(pending)
        self._check_stop()
        for start in range(0, len(pending), UNITS_PER_APPLY):
            summary.outcomes.extend(
                self._apply_units(reconciler, pending[start : start + UNITS_PER_APPLY])
            )
        return summary

    def _apply_units(
        self, reconciler: Reconciler, batch: list[tuple[str, list[TicketSpec]]]
    ) -> list[Outcome]:
        """Lease a batch of units and apply the ones we got together (bulk calls stay full)."""
        outcomes: list[Outcome] = []
        with ExitStack() as held:
            ours: list[TicketSpec] = []
            for unit, specs in batch:
                if held.enter_context(self.leases.hold(unit)):
                    ours.extend(specs)
                else:
                    outcomes.extend(leased(s) for s in specs)
            try:
                outcomes.extend(reconciler.apply(ours).outcomes)
            except LeaseLost:
                done = {o.key for o in outcomes}
                outcomes.extend(leased(s) for s in ours if s.key not in done)
        return outcomes

    def _safe_point(self) -> None:
        self._check_stop()
        self.leases.renew_due()

    def _page_read(self, stream: Stream, count: int) -> None:
        if self.on_page is not None:
            self.on_page(stream.value, count)
        self._safe_point()

    def _carried_over(
        self, cycle: Cycle, phase: CyclePhase, only: Sequence[str] | None = None
    ) -> History:
        """Each service's previous review (from the ledger, else the target), the months since
        it, the open improvement tickets linked to it, and (selected services; of those, the
        `only` ones in a webhook's cycle) its decisions."""
        selection = [k for k in phase.selection if only is None or k in only]
        return carried_over(
            self.store, self.target, self.settings, cycle,
            selection=selection, matrix=self.raci, every=self.book.everything(),
        )  # fmt: skip

    def _meeting_reader(
        self, cycle: Cycle, phase: CyclePhase, only: Sequence[str] | None = None
    ) -> MeetingReader:
        """Reads the meetings of the reviews whose pack still changes (while reviewing: the
        ones not frozen; while closing: all of them, for the closing activities' content);
        of the `only` services' reviews alone in a webhook's cycle."""
        rows = self.store.ledger_rows(self.target.system)
        refs = {
            key: TicketRef(key=row.ticket_key or "", id=row.ticket_id or "", url=row.ticket_url)
            for key, row in rows.items()
            if row.state == "created" and row.ticket_key
        }
        frozen = {key for key, row in rows.items() if row.frozen}
        read: set[str] = set()
        if phase.state is CycleState.CLOSING:
            read = set(phase.selection)
        elif phase.state is CycleState.REVIEWING:  # a pack freezing now is read a last time
            read = {k for k in phase.selection if review_ticket_key(cycle.id, k) not in frozen}
        if only is not None:
            read &= set(only)
        done = phase.frozen_reviews - frozen  # "Participate" done, the pack not frozen yet
        freezing = {key for key in read if review_ticket_key(cycle.id, key) in done}
        return MeetingReader(
            self.target,
            self.raci,
            role_holders(self.settings),
            cycle,
            refs,
            read,
            dates=phase.state is CycleState.CLOSING,
            due_dates=phase.state is not CycleState.SELECTING,
            adopt=self._adopt,
            freezing=freezing,
            plans=self.meeting_plans,
        )

    def _freeze_packs(
        self, build: ReviewBuild, summary: ApplySummary, reader: MeetingReader
    ) -> None:
        """Packs given their last version this cycle: once their review ticket took it, a note
        on the ticket says so (read back, it keeps a lost state file from rendering the pack
        again) and the ledger stops refreshing it. A failed note is tried again next cycle."""
        applied = {o.key for o in summary.outcomes if o.error is None and o.action in _APPLIED}
        rows = self.store.ledger_rows(self.target.system)
        for service_key in sorted(reader.freezing):
            pack = build.packs.get(service_key)
            key = review_ticket_key(build.cycle.id, service_key)
            row = rows.get(key)
            if pack is None or pack.meeting is None or key not in applied or row is None:
                continue
            if service_key in reader.record.frozen_noted or not row.ticket_key:
                continue
            ref = TicketRef(key=row.ticket_key, id=row.ticket_id or "", url=row.ticket_url)
            try:
                self.target.comment(ref, frozen_note(pack.meeting))
            except FatalError:
                raise
            except ConnectorError as error:
                log.warning("pack.freeze_note_failed", ticket=ref.key, error=str(error))
                continue
            self.store.freeze(self.target.system, key)
            log.info("pack.frozen", ticket=ref.key, service=service_key)

    def _adopt(self, specs: Sequence[TicketSpec]) -> dict[str, TicketRef]:
        """Tickets of these specs the ledger does not know, found by key and recorded (each
        further R person's Participate sub-task, after a lost state file)."""
        expected = [Expected(s.key, s.kind, s.parent_key) for s in specs]
        return adopt_tickets(self.target, self.store, expected)

    def _closing_bodies(
        self, build: ReviewBuild, phase: CyclePhase, record: CycleRecord
    ) -> dict[str, Document]:
        """While the cycle closes: the lessons-learned summary and the policy changes, from the
        cycle's packs and the sub-tasks' dates (none when a read failed: see `_readable`)."""
        if phase.state is not CycleState.CLOSING or record.unread or record.dates_unread:
            return {}
        packs = [build.packs[k] for k in phase.selection if k in build.packs]
        return {
            LESSONS_ACTIVITY: lessons_learned_document(build.cycle.id, packs, record.timings),
            POLICIES_ACTIVITY: update_policies_document(self.settings.review.policy_url, packs),
        }

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted

    def _unresolved(self, people: Sequence[Person]) -> tuple[Person, ...]:
        """People the target cannot find (reads only), for the packs' gap lists."""
        try:
            return self.target.unresolved(people)
        except ConnectorError as error:
            log.warning("people.lookup_failed", error=str(error))
            return ()

    def _change_note(self, build: ReviewBuild) -> ChangeNote:
        previous = {r.key: r.body for r in self._kept_states(PACK_STATE, build)}
        meetings = {r.key: r.body for r in self._kept_states(MEETING_STATE, build)}
        names = self._target_names(build)

        def note(spec: TicketSpec, row: LedgerRow) -> Document | None:
            if spec.kind is not TicketKind.REVIEW:
                return None
            service_key = _service_of(spec)
            pack = build.packs.get(service_key)
            if pack is None:
                return None
            lines = _meeting_changes(meetings.get(spec.key, {}), _meeting_state(pack.meeting))
            return _change_document(previous.get(spec.key), _pack_state(pack, names), lines)

        return note

    def _kept_states(self, stream: str, build: ReviewBuild) -> Iterable[MirrorRecord]:
        """What the last change notes knew of the reviews of `build`'s packs: a few reviews'
        (an announced cycle's) by their service, else every review's in one read."""
        if len(build.packs) <= FEW_PACKS:
            return self.store.mirrored_of(stream, list(build.packs))
        return self.store.mirrored(stream)

    def _target_names(self, build: ReviewBuild) -> dict[str, str]:
        if self._names is None or self._names[0] is not build.agreements:
            self._names = (build.agreements, target_names(build.agreements))
        return self._names[1]

    def _remember_packs(self, build: ReviewBuild) -> None:
        names = self._target_names(build)
        records = [
            MirrorRecord(
                stream=PACK_STATE,
                key=review_ticket_key(build.cycle.id, key),
                body=_pack_state(pack, names),
                service_key=key,
            )
            for key, pack in build.packs.items()
        ]
        self.store.store_page(self.target.system, PACK_STATE, records, None)
        meetings = [  # a review whose meeting was not read this cycle keeps what was known
            MirrorRecord(
                stream=MEETING_STATE,
                key=review_ticket_key(build.cycle.id, key),
                body=_meeting_state(pack.meeting),
                service_key=key,
            )
            for key, pack in build.packs.items()
            if pack.meeting is not None
        ]
        self.store.store_page(self.target.system, MEETING_STATE, meetings, None)

    def _attach_charts(
        self,
        build: ReviewBuild,
        summary: ApplySummary,
        followups: FollowUps,
        tickets: Sequence[TicketSpec],
    ) -> None:
        """Each live review ticket carries its current chart once (a protocol step: a chart a
        killed run may have uploaded is recognised by name and content, not uploaded again),
        and its description shows that chart where the target shows it by attachment id (the
        reconciler's update already did for a ticket whose chart was staged before it)."""
        ledger = self.store.ledger_rows(self.target.system)
        specs = {spec.key: spec for spec in tickets}
        service_of_key = {review_ticket_key(build.cycle.id, k): k for k in build.packs}
        due: list[tuple[str, TicketRef, str, bool]] = []
        for outcome in summary.outcomes:
            if outcome.kind != TicketKind.REVIEW.value or outcome.error is not None:
                continue
            if outcome.action not in (Action.CREATE, Action.UPDATE, Action.ADOPT, Action.UNCHANGED):
                continue
            service_key = service_of_key.get(outcome.key, "")
            row = ledger.get(outcome.key)
            if service_key not in build.charts or row is None or row.frozen:
                continue
            if row.state != "created":
                continue
            ref = TicketRef(key=row.ticket_key or "", id=row.ticket_id or "", url=row.ticket_url)
            due.append((outcome.key, ref, service_key, outcome.action is Action.CREATE))
        # Created this run too: their description update would read each (Cloud's search
        # reads them through the index lag, see `JiraTarget.read_ahead`). A chart still being
        # drawn is waited for only where its content is needed (`Charts`).
        charts = build.charts
        followups.read_ahead(
            [(key, ref, partial(charts.get, service), specs.get(key))
             for key, ref, service, _ in due]
        )  # fmt: skip
        for key, ref, service_key, fresh in due:
            self._safe_point()
            chart = charts.get(service_key)  # None: it failed to draw (logged)
            if chart is not None:
                followups.attach(
                    key, ref, chart_name(service_key), chart, fresh=fresh, spec=specs.get(key)
                )

    def _count_reads(self, pulled: PullSummary) -> None:
        if self.metrics is not None:
            for stream, count in pulled.read.items():
                self.metrics.records_read.labels(stream=stream).inc(count)

    def _count_tickets(self, summary: ApplySummary) -> None:
        if self.metrics is not None:
            for action, count in summary.as_counts().items():
                self.metrics.tickets.labels(action=action).inc(count)


class _PeopleCache(Protocol):
    cache: dict[str, str | None]

    def preload(self, known: Mapping[str, str | None]) -> None: ...


def _people_directory(target: TargetConnector) -> _PeopleCache | None:
    """A target's people cache, when it has one we can persist (the Jira connector does)."""
    directory = getattr(target, "people", None)
    if isinstance(getattr(directory, "cache", None), dict) and hasattr(directory, "preload"):
        return cast(_PeopleCache, directory)
    return None


def _start_people_cycle(target: TargetConnector) -> None:
    """People whose lookup failed last cycle are looked up again in this one."""
    start = getattr(getattr(target, "people", None), "start_cycle", None)
    if callable(start):
        start()


def _charts_of(build: ReviewBuild) -> Callable[[TicketSpec], tuple[str, bytes] | None]:
    """The chart (file name, content) each review ticket of `build` shows, if it has one."""
    service_of_key = {review_ticket_key(build.cycle.id, k): k for k in build.packs}

    def chart_of(spec: TicketSpec) -> tuple[str, bytes] | None:
        service_key = service_of_key.get(spec.key) if spec.kind == TicketKind.REVIEW else None
        chart = build.charts.get(service_key) if service_key is not None else None
        return None if chart is None or service_key is None else (chart_name(service_key), chart)

    return chart_of


# A review ticket that took (or already showed) its pack's last version.
_APPLIED = frozenset({Action.CREATE, Action.UPDATE, Action.UNCHANGED, Action.ADOPT})


def _readable(
    tickets: Sequence[TicketSpec], phase: CyclePhase, record: CycleRecord
) -> list[TicketSpec]:
    """The tickets to apply: a review whose tickets could not be read (with its sub-tasks: the
    due dates people set are not known), and the closing activities when the cycle's reviews
    or dates could not be read, keep what they show this cycle (their content would lose the
    meeting); the next cycle reads them again."""
    if not record.unread and not record.dates_unread:
        return list(tickets)
    closing = phase.state is CycleState.CLOSING
    kept = []
    for spec in tickets:
        if spec.service_key is not None and spec.service_key in record.unread:
            continue
        if closing and spec.activity_id in (LESSONS_ACTIVITY, POLICIES_ACTIVITY):
            continue
        kept.append(spec)
    return kept


def _with_people_due(tickets: Sequence[TicketSpec], record: CycleRecord) -> list[TicketSpec]:
    """A done sub-task keeps the due date its ticket shows: on "Schedule service review" it is
    the meeting date people set, which an update (or adopting the ticket after a lost state
    file) must not put back to the planned date."""
    return [
        spec.model_copy(update={"due": record.people_due[spec.key]})
        if spec.key in record.people_due
        else spec
        for spec in tickets
    ]


def _frozen_now(cycle: Cycle, phase: CyclePhase, reader: MeetingReader) -> set[str]:
    """Review tickets frozen now: those whose ticket says so, and those done with but not read
    this cycle (a pack read a last time now is frozen once its ticket has that version:
    `Engine._freeze_packs`)."""
    last = {review_ticket_key(cycle.id, key) for key in reader.freezing}
    noted = {review_ticket_key(cycle.id, key) for key in reader.record.frozen_noted}
    return noted | (phase.frozen_reviews - last)


def _finished_closing(raci: RaciMatrix, cycle: Cycle, phase: CyclePhase) -> list[str]:
    """The closing activities' sub-tasks once the cycle is closed: their content is final."""
    if phase.state is not CycleState.CLOSED:
        return []
    return [activity_ticket_key(cycle.id, a) for a in closing_activities(raci)]


def source_mappings(settings: Settings) -> tuple[ConnectorPlugin, SystemMapping]:
    """The configured source plugin and its compiled mapping (the settings' file, else its own)."""
    chosen = plugin(settings.sync.source)
    if chosen.source is None:
        raise ConfigError(f"connector {chosen.name!r} cannot be a source (sync.source)")
    path = settings.sync.mapping_file or chosen.mapping_file
    return chosen, load_mappings(chosen.mapping or chosen.name, path)


def _service_of(spec: TicketSpec) -> str:
    """The service a review ticket serves (its key may be hashed, so never parsed from it)."""
    return spec.service_key or ""


def target_names(agreements: Sequence[Agreement]) -> dict[str, str]:
    """Each agreement as the pack's targets table names it ("Availability", "Resolution P1"),
    or by its own name where two agreements of one service would read the same."""
    labels = {a.key: (a.service_key, agreement_label(a)) for a in agreements}
    uses = Counter(labels.values())
    return {a.key: a.name if uses[labels[a.key]] > 1 else labels[a.key][1] for a in agreements}


def _pack_state(pack: ReviewPack, names: dict[str, str]) -> dict[str, Any]:
    """What a change note compares: per agreement its name, status and breach count."""
    return {
        a.agreement_key: {
            "name": names.get(a.agreement_key, a.agreement_key),
            "status": a.status.value,
            "breached": a.breached,
            "measured": a.measured,
        }
        for a in pack.attainments
    }


def _meeting_state(meeting: Meeting | None) -> dict[str, Any]:
    """What a change note compares of a meeting: date, who attended, decisions, improvements."""
    if meeting is None:
        return {}
    return {
        "scheduled": meeting.scheduled.isoformat() if meeting.scheduled else None,
        "attended": [a.person.name for a in meeting.attendance if a.attended],
        "decisions": [f"{d.ticket} {d.recorded.isoformat()} {d.text}" for d in meeting.decisions],
        "improvements": [m.title for m in meeting.improvements],
    }


def _meeting_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The meeting's news since the last note: its date, attendance, decisions, improvements."""
    if not new:
        return []
    lines: list[str] = []
    if new["scheduled"] != old.get("scheduled"):
        lines.append(
            f"Meeting scheduled for {new['scheduled']}"
            if new["scheduled"]
            else "The meeting is no longer scheduled"
        )
    attended = [name for name in new["attended"] if name not in old.get("attended", [])]
    if attended:
        lines.append(f"Attended: {', '.join(attended)}")
    decided = [d for d in new["decisions"] if d not in old.get("decisions", [])]
    if decided:
        lines.append(_count(len(decided), "decision", "decisions") + " recorded")
    lines += [
        f"Improvement ticket linked: {title}"
        for title in new["improvements"]
        if title not in old.get("improvements", [])
    ]
    return lines


def _change_document(
    old: dict[str, Any] | None, new: dict[str, Any], meeting: Sequence[str] = ()
) -> Document | None:
    """The comment on a refreshed review: the meeting's news, new breaches and status changes
    in words ("Availability: missed its target (was: at risk)"); None for a first version."""
    if old is None:
        return None
    lines: list[str] = list(meeting)
    for key, now in sorted(new.items()):
        before = old.get(key)
        if before is None:
            continue
        added = int(now["breached"]) - int(before["breached"])
        if added > 0:
            lines.append(f"{_count(added, 'new breach', 'new breaches')} of {now['name']}")
        if now["status"] != before["status"]:
            now_words = STATUS_NOW.get(now["status"], _words(now["status"]))
            was = STATUS_BEFORE.get(before["status"], _words(before["status"]))
            lines.append(f"{now['name']}: {now_words} (was: {was})")
    if not lines:
        return Document(blocks=(doc.paragraph("The review pack was refreshed with new data."),))
    items = tuple((doc.text(line),) for line in lines)
    return Document(
        blocks=(doc.paragraph("The review pack was refreshed:"), doc.BulletList(items=items))
    )


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _words(value: str) -> str:
    """A status value this version does not know (a later one wrote it), as words."""
    return str(value).replace("_", " ")


def dumps(value: Any) -> str:
    """One JSON object for `--json` output."""
    return json.dumps(value, sort_keys=False, default=str)
