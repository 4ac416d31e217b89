"""The portfolio page's data: a run's review build, the ledger and one bulk read of the cycle's
tickets, handed to `review.portfolio` to render.

`slm-sync report --portfolio` renders it after a dry run (nothing written to the target); the
daemon renders it after every successful cycle and serves the last one at `/` (`PortfolioPage`).
The ticket read is the only extra call: one `target.state` for the selected services' review
tickets and sub-tasks the ledger knows. When it fails the page still renders, saying "not read".
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import structlog

from config import Settings
from connectors import ConnectorError, FatalError, TargetConnector, TicketRef, TicketState
from review import Service, TicketKind, TicketSpec
from review.portfolio import (
    ActivityProgress,
    Portfolio,
    ServiceReview,
    portfolio_rows,
    progress_of,
    render_portfolio,
)
from sync.engine import Engine, RunResult
from sync.state import LedgerRow, StateStore

log = structlog.get_logger("slm_sync.portfolio")
PAGE_NAME = "portfolio.html"


def gather_portfolio(
    result: RunResult,
    store: StateStore,
    target: TargetConnector,
    settings: Settings,
    *,
    now: datetime | None = None,
) -> Portfolio:
    """Every service of the run's build, with the selected services' review progress."""
    now = now or datetime.now(UTC)
    today = now.date()
    build = result.build
    reviews = _reviews(result.tickets, result.phase.selection, store, target, today)
    rows = portfolio_rows(
        build.services,
        build.candidates,
        build.agreements,
        build.attainments,
        findings=build.findings,
        gaps=build.gaps,
        last_reviewed=build.last_reviewed,
        today=today,
        reviews=reviews,
        record_url=_record_url(settings),
    )
    return Portfolio(
        cycle_id=build.cycle.id,
        cycle_state=result.phase.state.value,
        period=build.cycle.period,
        generated=now,
        rows=rows,
        at_risk_margin_percent=settings.review.at_risk_margin_percent,
    )


def portfolio_html(
    result: RunResult, store: StateStore, target: TargetConnector, settings: Settings
) -> str:
    """The rendered page for a run."""
    return render_portfolio(gather_portfolio(result, store, target, settings))


def write_portfolio(settings: Settings, store: StateStore, output: Path) -> Path:
    """A dry run (reads only, nothing written to the target) rendered to `output`/portfolio.html."""
    engine = Engine.from_settings(settings, store)
    result = engine.run_once(dry_run=True)
    output.mkdir(parents=True, exist_ok=True)
    page = output / PAGE_NAME
    page.write_text(portfolio_html(result, store, engine.target, settings), encoding="utf-8")
    return page


class PortfolioPage:
    """The last cycle's page for the daemon's HTTP server (read by its threads)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._html: str | None = None
        self._lock = threading.Lock()

    @property
    def html(self) -> str | None:
        """The page, or None before the first successful cycle."""
        with self._lock:
            return self._html

    def refresh(self, engine: Engine, result: RunResult) -> None:
        """Render the page for a finished run; a failure keeps the previous page, logged."""
        try:
            page = portfolio_html(result, engine.store, engine.target, self.settings)
        except Exception as error:  # the page must never cost a cycle
            log.warning("portfolio.render_failed", error=f"{type(error).__name__}: {error}")
            return
        with self._lock:
            self._html = page


def _reviews(
    tickets: Sequence[TicketSpec],
    selection: Sequence[str],
    store: StateStore,
    target: TargetConnector,
    today: date,
) -> dict[str, ServiceReview]:
    """The selected services' review tickets and their sub-tasks, as the target shows them."""
    chosen = set(selection)
    roots = {t.key: t for t in tickets if t.kind is TicketKind.REVIEW and t.service_key in chosen}
    children: dict[str, list[TicketSpec]] = {}
    for spec in tickets:
        if spec.kind is TicketKind.ACTIVITY and spec.parent_key in roots:
            children.setdefault(spec.parent_key, []).append(spec)
    rows = store.ledger_rows(target.system)
    specs = [*roots.values(), *(c for cs in children.values() for c in cs)]
    refs = {s.key: ref for s in specs if (ref := _ref(rows.get(s.key))) is not None}
    states = _states(target, list(refs.values()))
    reviews: dict[str, ServiceReview] = {}
    for key, root in roots.items():
        assert root.service_key is not None
        reviews[root.service_key] = ServiceReview(
            ticket=_progress(root, refs.get(key), states, today),
            activities=tuple(
                _progress(c, refs.get(c.key), states, today) for c in children.get(key, [])
            ),
        )
    return reviews


def _ref(row: LedgerRow | None) -> TicketRef | None:
    if row is None or row.state != "created" or not row.ticket_key:
        return None
    return TicketRef(key=row.ticket_key, id=row.ticket_id or "", url=row.ticket_url)


def _states(target: TargetConnector, refs: list[TicketRef]) -> dict[str, TicketState] | None:
    """One bulk read of the tickets (None when it failed: the page says "not read")."""
    if not refs:
        return {}
    try:
        return target.state(refs)
    except FatalError:
        raise
    except ConnectorError as error:
        log.warning("portfolio.state_unread", tickets=len(refs), error=str(error))
        return None


def _progress(
    spec: TicketSpec,
    ref: TicketRef | None,
    states: Mapping[str, TicketState] | None,
    today: date,
) -> ActivityProgress:
    state = states.get(ref.key) if ref is not None and states is not None else None
    due = (state.due if state is not None else None) or spec.due
    done = None if state is None else state.done
    assignee = spec.assignee.name if spec.assignee else (state.assignee if state else None)
    return ActivityProgress(
        title=spec.title,
        status=progress_of(done=done, due=due, today=today, created=ref is not None),
        assignee=assignee or None,
        due=due,
        ticket=ref.key if ref is not None else None,
        url=ref.url if ref is not None else None,
    )


def _record_url(settings: Settings) -> _RecordUrl:
    """Links to the services' records: ServiceNow's form URL (other sources: none)."""
    base = settings.servicenow.record_base_url() if settings.sync.source == "servicenow" else None
    return _RecordUrl(base)


class _RecordUrl:
    def __init__(self, base: str | None) -> None:
        self.base = base

    def __call__(self, service: Service) -> str | None:
        source = service.source
        if source is None:
            return None
        if source.url:
            return source.url
        if self.base is None or not source.table:
            return None
        return f"{self.base}/{source.table}.do?sys_id={source.id}"
