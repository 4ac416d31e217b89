"""The portfolio page: every service at a glance and the current cycle's progress, as one
self-contained HTML page.

`slm-sync report --portfolio` writes it and the daemon serves it at `/`. Per service it shows
the monthly attainment heat strip of each agreement, the missed and infeasible targets, the
gaps, the months since the last review and the selection score with its reasons; per selected
service, the review's activities (done / open / late), who has them and a link to the ticket.

The page needs no network (inline CSS, no fonts, no scripts) and no JavaScript: the tier and
status filters are radio buttons whose `:checked ~` CSS rules hide the other rows, and with no
filter chosen every row shows. Every piece of text is escaped like the packs (names carry `<`,
quotes, `^` and emoji); links are kept only for http(s) and lose any user:password part. Keys
(ServiceNow sys_ids) are never shown as text: a service is named, and linked to its record.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from review.attainment import status_of
from review.cycle import months_between
from review.model import (
    Agreement,
    Attainment,
    AttainmentStatus,
    FeasibilityFinding,
    Gap,
    ReviewPeriod,
    Service,
)
from review.pack import agreement_label
from review.selection import Candidate, Reason

TIERS = ("1", "2", "3", "4", "none")
_STATUS_WORDS = {
    AttainmentStatus.MISSED: "missed",
    AttainmentStatus.AT_RISK: "at risk",
    AttainmentStatus.MET: "met",
    AttainmentStatus.NO_DATA: "no data",
}
# A service's status is its worst agreement's.
_SEVERITY = (
    AttainmentStatus.MISSED,
    AttainmentStatus.AT_RISK,
    AttainmentStatus.MET,
    AttainmentStatus.NO_DATA,
)
_LINK_SCHEMES = {"http", "https"}


class Progress(StrEnum):
    """Where one of the cycle's tickets stands, as its ticket shows it."""

    DONE = "done"
    OPEN = "open"
    LATE = "late"  # open past its due date
    PENDING = "not created yet"
    UNKNOWN = "not read"  # the target did not answer


@dataclass(frozen=True)
class ActivityProgress:
    """One ticket of a service's review: the review ticket itself or an activity sub-task."""

    title: str
    status: Progress
    assignee: str | None = None
    due: date | None = None
    ticket: str | None = None  # what the target calls it (SLM-12, SLMT0001002)
    url: str | None = None


@dataclass(frozen=True)
class ServiceReview:
    """The current cycle's review of one selected service."""

    ticket: ActivityProgress
    activities: tuple[ActivityProgress, ...] = ()


@dataclass(frozen=True)
class PortfolioRow:
    """One service: its attainment, problems, last review and selection score."""

    service: Service
    url: str | None
    strips: tuple[tuple[str, Attainment], ...]  # (agreement label, attainment)
    missed: tuple[str, ...]
    infeasible: tuple[str, ...]
    gaps: int
    months_since_review: int | None  # None: never reviewed
    score: float
    reasons: tuple[Reason, ...]
    review: ServiceReview | None = None

    @property
    def status(self) -> AttainmentStatus:
        """The worst status of the service's agreements (NO_DATA without any)."""
        seen = {a.status for _, a in self.strips}
        return next((s for s in _SEVERITY if s in seen), AttainmentStatus.NO_DATA)

    @property
    def tier(self) -> str:
        """The tier as the filters name it: "1".."4", or "none"."""
        return str(self.service.tier) if self.service.tier is not None else "none"


@dataclass(frozen=True)
class Portfolio:
    """What the page shows: the cycle, and one row per service, best candidate first."""

    cycle_id: str
    cycle_state: str
    period: ReviewPeriod
    generated: datetime
    rows: tuple[PortfolioRow, ...]
    at_risk_margin_percent: float = 2.0


def portfolio_rows(
    services: Iterable[Service],
    candidates: Sequence[Candidate],
    agreements: Iterable[Agreement],
    attainments: Mapping[str, Attainment],
    *,
    findings: Mapping[str, Sequence[FeasibilityFinding]],
    gaps: Mapping[str, Sequence[Gap]],
    last_reviewed: Mapping[str, date],
    today: date,
    reviews: Mapping[str, ServiceReview] | None = None,
    record_url: Callable[[Service], str | None] = lambda s: None,
) -> tuple[PortfolioRow, ...]:
    """One row per service in the candidates' order (the others after them, by name)."""
    names = {a.key: agreement_label(a) for a in agreements}
    own: dict[str, list[Agreement]] = {}
    for agreement in agreements:
        if agreement.service_key and not agreement.component_key:
            own.setdefault(agreement.service_key, []).append(agreement)
    rank = {c.service_key: i for i, c in enumerate(candidates)}
    scored = {c.service_key: c for c in candidates}
    rows = []
    for service in sorted(services, key=lambda s: (rank.get(s.key, len(rank)), s.name, s.key)):
        strips = tuple(
            (f"{agreement_label(a)}", attainments[a.key])
            for a in sorted(own.get(service.key, []), key=agreement_label)
            if a.key in attainments
        )
        last = last_reviewed.get(service.key)
        candidate = scored.get(service.key)
        rows.append(
            PortfolioRow(
                service=service,
                url=record_url(service),
                strips=strips,
                missed=tuple(label for label, a in strips if a.status is AttainmentStatus.MISSED),
                infeasible=tuple(
                    names.get(f.agreement_key, f.metric.value)
                    for f in findings.get(service.key, ())
                ),
                gaps=len(gaps.get(service.key, ())),
                months_since_review=months_between(last, today) if last else None,
                score=candidate.score if candidate else 0.0,
                reasons=candidate.reasons if candidate else (),
                review=(reviews or {}).get(service.key),
            )
        )
    return tuple(rows)


def progress_of(
    *, done: bool | None, due: date | None, today: date, created: bool = True
) -> Progress:
    """DONE, OPEN, LATE (open past its due date); PENDING if not created, UNKNOWN if unread."""
    if not created:
        return Progress.PENDING
    if done is None:
        return Progress.UNKNOWN
    if done:
        return Progress.DONE
    return Progress.LATE if due is not None and due < today else Progress.OPEN


def render_portfolio(portfolio: Portfolio) -> str:
    """The portfolio as one HTML page: inline CSS, no scripts, no external resources."""
    months = period_months(portfolio.period)
    title = f"Service portfolio, review cycle {portfolio.cycle_id}"
    rows = portfolio.rows
    reviewing = [r for r in rows if r.review is not None]
    body = [
        f"<h1>{_h(title)}</h1>",
        '<p class="meta">Cycle state: '
        f'<strong class="cycle-state">{_h(portfolio.cycle_state)}</strong>; '
        f"period {_h(months[0] if months else '')} to {_h(months[-1] if months else '')}; "
        f"{len(rows)} services, {sum(r.status is AttainmentStatus.MISSED for r in rows)} "
        f"missing a target, {len(reviewing)} in review; "
        f"generated {_h(portfolio.generated.strftime('%Y-%m-%d %H:%M UTC'))}.</p>",
        _filter_inputs(),
        _filter_labels(),
        _services_table(rows, months, portfolio.at_risk_margin_percent),
        _progress_section(reviewing),
    ]
    return _PAGE.format(title=_h(title), style=_STYLE + _filter_css(), body="\n".join(body))


def period_months(period: ReviewPeriod) -> list[str]:
    """The period's months as YYYY-MM, oldest first (its end is exclusive)."""
    last = period.end - timedelta(microseconds=1)
    year, month = period.start.year, period.start.month
    months = []
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def link_url(url: str | None) -> str | None:
    """The URL if it is http(s), without any user:password part; else None."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in _LINK_SCHEMES or not parts.hostname:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


# Filters ------------------------------------------------------------------------------------

_STATUS_FILTERS = (
    ("missed", "missed"),
    ("at_risk", "at risk"),
    ("met", "met"),
    ("no_data", "no data"),
    ("in-review", "in review"),
)


def _filter_inputs() -> str:
    """Radio buttons before the content: CSS `:checked ~` rules hide the rows not chosen."""
    groups = [("tier", ["all", *TIERS]), ("status", ["all", *(s for s, _ in _STATUS_FILTERS)])]
    return "\n".join(
        f'<input class="filter" type="radio" name="{group}" id="{group}-{value}"'
        + (" checked>" if value == "all" else ">")
        for group, values in groups
        for value in values
    )


def _filter_labels() -> str:
    tiers = [("all", "all")] + [(t, "none" if t == "none" else f"tier {t}") for t in TIERS]
    statuses = [("all", "all"), *_STATUS_FILTERS]
    tier_labels = "".join(f'<label for="tier-{t}">{_h(w)}</label>' for t, w in tiers)
    status_labels = "".join(f'<label for="status-{s}">{_h(w)}</label>' for s, w in statuses)
    return (
        '<nav class="filters" aria-label="Filters">'
        f'<span class="group">Tier: {tier_labels}</span>'
        f'<span class="group">Status: {status_labels}</span></nav>'
    )


def _filter_css() -> str:
    rules = []
    for tier in TIERS:
        rules.append(f"#tier-{tier}:checked ~ * .service:not(.tier-{tier}) {{ display: none; }}")
    for status, _ in _STATUS_FILTERS:
        rules.append(
            f"#status-{status}:checked ~ * .service:not(.status-{status}) {{ display: none; }}"
        )
    for name in ["tier-all", *(f"tier-{t}" for t in TIERS), "status-all"] + [
        f"status-{s}" for s, _ in _STATUS_FILTERS
    ]:
        rules.append(f'#{name}:checked ~ .filters label[for="{name}"] {{ {_CHOSEN} }}')
    return "\n".join(rules) + "\n"


# Services table ------------------------------------------------------------------------------


def _services_table(rows: Sequence[PortfolioRow], months: list[str], margin: float) -> str:
    span = f" ({months[0]} to {months[-1]})" if months else ""
    head = "".join(
        f"<th>{_h(h)}</th>"
        for h in (
            "Service",
            "Tier",
            f"Monthly attainment{span}",
            "Missed targets",
            "Infeasible targets",
            "Gaps",
            "Months since last review",
            "Selection score",
        )
    )
    body = "".join(_service_row(row, months, margin) for row in rows)
    return (
        '<div class="table"><table class="portfolio">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _row_classes(row: PortfolioRow) -> str:
    classes = ["service", f"tier-{row.tier}", f"status-{row.status.value}"]
    if row.review is not None:
        classes.append("status-in-review")
    return " ".join(classes)


def _service_row(row: PortfolioRow, months: list[str], margin: float) -> str:
    name = _link(row.url, row.service.name, css="service-name")
    if row.review is not None:
        name += ' <span class="badge review">in review</span>'
    since = "never reviewed" if row.months_since_review is None else str(row.months_since_review)
    cells = [
        name,
        _h(row.tier),
        _strips(row.strips, months, margin),
        _word_list(row.missed, "missed"),
        _word_list(row.infeasible, "infeasible"),
        f'<span class="count">{row.gaps}</span>',
        f'<span class="count">{_h(since)}</span>',
        _score(row),
    ]
    tds = "".join(f"<td>{c}</td>" for c in cells)
    return f'<tr class="{_row_classes(row)}">{tds}</tr>'


def _strips(strips: Sequence[tuple[str, Attainment]], months: list[str], margin: float) -> str:
    if not strips:
        return '<span class="none">no agreements</span>'
    lines = []
    for label, attainment in strips:
        by_month = {m.month: m for m in attainment.monthly}
        cells = []
        for month in months:
            measured = by_month.get(month)
            value = measured.attainment if measured is not None else None
            status = status_of(value, attainment.target_percent, margin)
            shown = "no data" if value is None else f"{value * 100:.1f} %"
            tip = f"{month}: {shown} (target {attainment.target_percent:g} %)"
            cells.append(f'<span class="cell {status.value}" title="{_h(tip)}"></span>')
        overall = "" if attainment.attainment is None else f" {attainment.attainment * 100:.1f} %"
        word = _STATUS_WORDS[attainment.status]
        lines.append(
            f'<div class="strip"><span class="label">{_h(label)}</span>'
            f'<span class="cells">{"".join(cells)}</span>'
            f'<span class="word {attainment.status.value}">{_h(word + overall)}</span></div>'
        )
    return f'<div class="strips">{"".join(lines)}</div>'


def _word_list(items: Sequence[str], css: str) -> str:
    if not items:
        return '<span class="none">none</span>'
    return "".join(f'<span class="tag {css}">{_h(item)}</span>' for item in items)


def _score(row: PortfolioRow) -> str:
    reasons = "".join(
        f"<li>{_h(r.factor)}: {r.points:g} ({_h(r.detail)})</li>" for r in row.reasons
    )
    listed = f'<ul class="reasons">{reasons}</ul>' if reasons else ""
    return f'<span class="score">{row.score:g}</span>{listed}'


# Cycle progress ------------------------------------------------------------------------------


def _progress_section(rows: Sequence[PortfolioRow]) -> str:
    if not rows:
        return (
            '<section class="progress"><h2>This cycle\'s reviews</h2>'
            '<p class="none">No service is selected for review yet.</p></section>'
        )
    parts = ['<section class="progress"><h2>This cycle\'s reviews</h2>']
    for row in rows:
        assert row.review is not None
        review = row.review
        done = sum(a.status is Progress.DONE for a in review.activities)
        late = sum(a.status is Progress.LATE for a in review.activities)
        heading = _h(row.service.name)
        ticket = _ticket_link(review.ticket)
        parts.append(
            f'<div class="{_row_classes(row)} review-progress">'
            f"<h3>{heading}</h3>"
            f'<p>Review ticket {ticket}: <span class="progress-word {_css(review.ticket.status)}">'
            f"{_h(review.ticket.status.value)}</span>; {done} of {len(review.activities)} "
            f"activities done, {late} late.</p>"
            f"{_activities_table(review.activities)}</div>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _activities_table(activities: Sequence[ActivityProgress]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("Activity", "Status", "Assignee", "Due", "Ticket"))
    rows = "".join(
        "<tr>"
        f"<td>{_h(a.title)}</td>"
        f'<td><span class="progress-word {_css(a.status)}">{_h(a.status.value)}</span></td>'
        f"<td>{_h(a.assignee or 'unassigned')}</td>"
        f"<td>{_h(a.due.isoformat() if a.due else '')}</td>"
        f"<td>{_ticket_link(a)}</td>"
        "</tr>"
        for a in activities
    )
    return f'<table class="activities"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _ticket_link(activity: ActivityProgress) -> str:
    if not activity.ticket:
        return '<span class="none">no ticket yet</span>'
    return _link(activity.url, activity.ticket, css="ticket")


def _css(status: Progress) -> str:
    return status.name.lower()


def _link(url: str | None, text: str, *, css: str) -> str:
    safe = link_url(url)
    if safe is None:
        return f'<span class="{css}">{_h(text)}</span>'
    return f'<a class="{css}" href="{_h(safe)}">{_h(text)}</a>'


def _h(value: str) -> str:
    return html.escape(value, quote=True)


_CHOSEN = "background: #0052cc; color: #fff; border-color: #0052cc;"

_STYLE = """
body { font-family: sans-serif; margin: 1.5rem; color: #172b4d; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; } h3 { font-size: 1rem; }
.meta { color: #42526e; }
input.filter { position: absolute; opacity: 0; pointer-events: none; }
.filters { margin: 0.5rem 0 1rem; }
.filters .group { margin-right: 1.5rem; }
.filters label { display: inline-block; border: 1px solid #c1c7d0; border-radius: 3px;
  padding: 0.1rem 0.5rem; margin: 0 0.15rem; cursor: pointer; }
table { border-collapse: collapse; }
table.portfolio { font-size: 0.9em; }
.table { overflow-x: auto; }
th, td { border: 1px solid #c1c7d0; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f4f5f7; }
.strips { display: grid; grid-template-columns: max-content max-content max-content;
  gap: 1px 0.4rem; align-items: center; white-space: nowrap; }
.strip { display: contents; }
.strip .label { font-size: 0.85em; }
.service-name { font-weight: bold; }
.cells { display: inline-flex; gap: 1px; }
.cell { display: inline-block; width: 0.75rem; height: 0.9rem; border-radius: 2px; }
.cell.met, .word.met { background: #36b37e; }
.cell.at_risk, .word.at_risk { background: #ffab00; }
.cell.missed, .word.missed { background: #de350b; }
.cell.no_data, .word.no_data { background: #dfe1e6; }
.word { font-size: 0.8em; padding: 0 0.3rem; border-radius: 3px; color: #172b4d; }
.word.missed { color: #fff; }
.tag { display: inline-block; font-size: 0.85em; padding: 0 0.3rem; margin: 0.1rem 0;
  border-radius: 3px; background: #ffebe6; color: #bf2600; white-space: nowrap; }
.tag.infeasible { background: #fffae6; color: #974f0c; }
.none { color: #6b778c; font-size: 0.85em; }
.score { font-weight: bold; }
.activities td:nth-child(n+2) { white-space: nowrap; }
.reasons { margin: 0.2rem 0 0; padding-left: 1rem; font-size: 0.75em; color: #42526e;
  min-width: 9rem; }
.badge { font-size: 0.75em; padding: 0 0.3rem; border-radius: 3px; background: #deebff;
  color: #0747a6; }
.progress-word { font-weight: bold; padding: 0 0.3rem; border-radius: 3px; }
.progress-word.done { background: #e3fcef; color: #006644; }
.progress-word.open { background: #deebff; color: #0747a6; }
.progress-word.late { background: #ffebe6; color: #bf2600; }
.progress-word.pending, .progress-word.unknown { background: #dfe1e6; color: #42526e; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{body}
</body>
</html>
"""
