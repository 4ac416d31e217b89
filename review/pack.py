"""The review pack: everything one service review shows, as a neutral document.

Sections, in the order a review meeting walks through them: status summary, targets (target,
measured, status), monthly attainment (the chart), feasibility findings, breaches, customer
satisfaction, gaps, and the existing materials the seed asks reviews to incorporate (previous
review, knowledge articles, problems, open improvement actions carried over). A review ticket's
pack (one with a `Meeting`) opens with the meeting (date, invitees, attendance, an agenda that
follows these sections) and ends with "Decisions and actions" (`review.meeting`). Tables stay at
four or five columns so Jira shows them without scrolling.

The status summary's headline is the worst status of the targets that have records, and NO DATA
when none has: a target without records is never counted as met. Each such target is a gap of
the pack (`target_without_data_gap`), and a "(see gaps)" is written only beside a gap the list
holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta

from review import document as doc
from review.csat import CsatSummary
from review.feasibility import duration_text
from review.gaps import target_without_data_gap
from review.meeting import DECISIONS_HEADING, decisions_blocks, meeting_blocks
from review.model import (
    Agreement,
    Attainment,
    AttainmentStatus,
    Breach,
    FeasibilityFinding,
    Gap,
    GapKind,
    Material,
    MaterialKind,
    Meeting,
    Person,
    ReviewPack,
    ReviewPeriod,
    Service,
)
from review.references import material_reference, person_mention, reference

CHART_HEADING = "Monthly attainment"
SECTION_TITLES = (
    "Status summary",
    "Targets",
    CHART_HEADING,
    "Feasibility",
    "Breaches",
    "Customer satisfaction",
    "Gaps",
    "Existing materials",
)
STATUS_LOZENGE = {
    AttainmentStatus.MET: ("MET", doc.StatusColor.GREEN),
    AttainmentStatus.AT_RISK: ("AT RISK", doc.StatusColor.YELLOW),
    AttainmentStatus.MISSED: ("MISSED", doc.StatusColor.RED),
    AttainmentStatus.NO_DATA: ("NO DATA", doc.StatusColor.NEUTRAL),
}
_SEE_GAPS = " (see gaps)"
MATERIAL_SECTIONS = (
    (MaterialKind.PREVIOUS_REVIEW, "Previous review"),
    (MaterialKind.PREVIOUS_DECISION, "Decisions of the previous review"),
    (MaterialKind.IMPROVEMENT, "Open improvement actions carried over"),
    (MaterialKind.PROBLEM, "Problems"),
    (MaterialKind.KNOWLEDGE, "Knowledge articles"),
)


def build_pack(
    service: Service,
    period: ReviewPeriod,
    agreements: Iterable[Agreement],
    attainments: Mapping[str, Attainment],
    *,
    findings: Sequence[FeasibilityFinding] = (),
    gaps: Sequence[Gap] = (),
    materials: Iterable[Material] = (),
    csat: CsatSummary | None = None,
    chart_name: str | None = None,
    top_breaches: int = 10,
    meeting: Meeting | None = None,
) -> ReviewPack:
    """The pack of one service: its SLAs' attainment, findings, gaps, materials, and the body;
    with a `meeting` (a review ticket's pack) also the meeting and its decisions.

    `gaps` are the service's (`find_gaps`); the pack adds one per target without records."""
    slas = sorted(
        (a for a in agreements if a.service_key == service.key and not a.component_key),
        key=lambda a: (a.metric.value, a.priority or "", a.key),
    )
    measured = tuple(attainments[a.key] for a in slas if a.key in attainments)
    gaps = with_target_gaps(gaps, slas, attainments)
    breaches = tuple(
        sorted(
            (b for a in measured for b in a.top_breaches),
            key=lambda b: (-(b.overrun or 0.0), b.record_key),
        )[:top_breaches]
    )
    own_materials = tuple(m for m in materials if m.service_key in (None, service.key))
    sections = (
        *_summary(service, period, [_status(a, attainments) for a in slas], gaps),
        *_targets(slas, attainments),
        *_chart(chart_name, slas, attainments),
        *_feasibility(findings, {a.key: a for a in slas}, _component_urls(service)),
        *_breaches(measured, breaches, {a.key: a for a in slas}),
        *_csat(csat, gaps),
        *_gaps(gaps, _component_urls(service)),
        *_materials(own_materials),
    )
    if meeting is not None:
        agenda = agenda_items(measured, findings, breaches, gaps, own_materials, meeting)
        sections = (*meeting_blocks(meeting, agenda), *sections, *decisions_blocks(meeting))
    body = doc.Document(blocks=sections)
    return ReviewPack(
        service=service,
        period=period,
        attainments=measured,
        findings=tuple(findings),
        gaps=tuple(gaps),
        materials=own_materials,
        csat_average=csat.average if csat else None,
        csat_responses=csat.responses if csat else 0,
        breaches=breaches,
        chart_name=chart_name,
        meeting=meeting,
        body=body,
    )


def with_target_gaps(
    gaps: Sequence[Gap], slas: Sequence[Agreement], attainments: Mapping[str, Attainment]
) -> tuple[Gap, ...]:
    """`gaps` and a gap per target without records, each once, in `GapKind` order (stable)."""
    missing = [
        target_without_data_gap(a, agreement_label(a), target_text(a))
        for a in slas
        if _status(a, attainments) is AttainmentStatus.NO_DATA
    ]
    order = list(GapKind)
    return tuple(sorted(dict.fromkeys((*gaps, *missing)), key=lambda g: order.index(g.kind)))


def headline_status(statuses: Iterable[AttainmentStatus]) -> AttainmentStatus:
    """The pack's headline: the worst status of the targets with records; NO_DATA when none
    has records (no data is not a met target)."""
    known = {s for s in statuses if s is not AttainmentStatus.NO_DATA}
    for status in (AttainmentStatus.MISSED, AttainmentStatus.AT_RISK, AttainmentStatus.MET):
        if status in known:
            return status
    return AttainmentStatus.NO_DATA


def _status(agreement: Agreement, attainments: Mapping[str, Attainment]) -> AttainmentStatus:
    result = attainments.get(agreement.key)
    return result.status if result is not None else AttainmentStatus.NO_DATA


def agenda_items(
    measured: Sequence[Attainment],
    findings: Sequence[FeasibilityFinding],
    breaches: Sequence[Breach],
    gaps: Sequence[Gap],
    materials: Sequence[Material],
    meeting: Meeting,
) -> list[str]:
    """The meeting's agenda: the pack's sections in order, each with what there is to discuss."""
    missed = sum(a.status is AttainmentStatus.MISSED for a in measured)
    at_risk = sum(a.status is AttainmentStatus.AT_RISK for a in measured)
    carried = sum(m.kind is MaterialKind.IMPROVEMENT and m.open for m in materials)
    total_breaches = sum(a.breached for a in measured)
    notes = {
        "Targets": f"{missed} missed, {at_risk} at risk of {len(measured)}",
        "Feasibility": f"{len(findings)} target(s) beyond what the components allow",
        "Breaches": f"{total_breaches} in the period",
        "Gaps": f"{len(gaps)} missing item(s)",
        "Existing materials": f"{carried} open improvement action(s) carried over",
    }
    decided = (
        f"{len(meeting.decisions)} decision(s) and {len(meeting.improvements)} improvement "
        "ticket(s) recorded"
    )
    items = [f"{title}: {notes[title]}" if title in notes else title for title in SECTION_TITLES]
    return [*items, f"{DECISIONS_HEADING}: {decided}"]


def agreement_label(agreement: Agreement) -> str:
    """A short name for tables: 'Resolution P1', 'Availability'."""
    label = agreement.metric.value.capitalize()
    if agreement.priority:
        priority = agreement.priority
        label += f" P{priority}" if priority.isdigit() else f" {priority}"
    return label


def _label(slas: Mapping[str, Agreement], key: str) -> str:
    return agreement_label(slas[key]) if key in slas else key


def target_text(agreement: Agreement) -> str:
    """The target as people say it: '95 % within 4 h', '99.9 % available'."""
    percent = f"{agreement.target_percent:g} %"
    if agreement.window:
        return f"{percent} within {duration_text(agreement.window)}"
    return f"{percent} available" if agreement.metric.value == "availability" else percent


def status_lozenge(status: AttainmentStatus) -> doc.Status:
    """The coloured lozenge of an attainment status."""
    text, color = STATUS_LOZENGE[status]
    return doc.Status(text=text, color=color)


def _summary(
    service: Service,
    period: ReviewPeriod,
    statuses: Sequence[AttainmentStatus],
    gaps: Sequence[Gap],
) -> list[doc.Block]:
    counts = {s: statuses.count(s) for s in AttainmentStatus}
    headline = headline_status(statuses)
    last_day = (period.end - timedelta(days=1)).date()
    span = f"{period.start.date().isoformat()} to {last_day.isoformat()}"
    text = (
        f", tier {service.tier if service.tier is not None else 'unknown'}, "
        f"period {span}: {len(statuses)} targets, {counts[AttainmentStatus.MET]} met, "
        f"{counts[AttainmentStatus.AT_RISK]} at risk, {counts[AttainmentStatus.MISSED]} "
        f"missed, {counts[AttainmentStatus.NO_DATA]} without data."
    )
    if statuses and headline is AttainmentStatus.NO_DATA:  # each target is a gap, so listed
        text += f" No target has records in the period, so none can be judged{_SEE_GAPS}."
    kinds = {g.kind for g in gaps}
    roles = (
        ("Service owner", service.owner, GapKind.NO_OWNER),
        ("Business owner", service.business_owner, GapKind.NO_BUSINESS_OWNER),
        ("LT sponsor", service.lt_sponsor, GapKind.NO_LT_SPONSOR),
    )
    return [
        doc.heading(2, "Status summary"),
        doc.paragraph(status_lozenge(headline), " ", _service_name(service), text),
        doc.BulletList(
            items=tuple(
                (doc.text(f"{role}: "), _person(person, kind in kinds))
                for role, person, kind in roles
            )
        ),
    ]


def _service_name(service: Service) -> doc.Inline:
    """The service's name, linking to its record in the source (the CMDB) where there is one."""
    url = service.source.url if service.source else None
    return doc.Link(text=service.name, url=url) if url else doc.text(service.name)


def _person(person: Person | None, gap_listed: bool) -> doc.Inline:
    if person is None:
        return doc.text(f"not named{_SEE_GAPS}" if gap_listed else "not named")
    return person_mention(person)


def _targets(slas: Sequence[Agreement], attainments: Mapping[str, Attainment]) -> list[doc.Block]:
    if not slas:
        return [doc.heading(2, "Targets"), doc.paragraph("No service level agreement applies.")]
    rows = []
    for agreement in slas:
        result = attainments.get(agreement.key)
        status = result.status if result else AttainmentStatus.NO_DATA
        rows.append(
            (
                (doc.text(agreement_label(agreement)),),
                (doc.text(target_text(agreement)),),
                (doc.text(_measured_text(result)),),
                (status_lozenge(status),),
            )
        )
    return [
        doc.heading(2, "Targets"),
        doc.Table(header=("Agreement", "Target", "Measured", "Status"), rows=tuple(rows)),
    ]


def _measured_text(result: Attainment | None) -> str:
    if result is None or result.attainment is None:
        return "no records"
    return f"{result.attainment * 100:.1f} % of {result.measured} ({result.breached} breached)"


def _chart(
    chart_name: str | None, slas: Sequence[Agreement], attainments: Mapping[str, Attainment]
) -> list[doc.Block]:
    blocks: list[doc.Block] = [doc.heading(2, CHART_HEADING)]
    if chart_name:  # Data Center shows it inline; elsewhere a line says it is attached
        blocks.append(doc.Image(file=chart_name, alt="Chart of attainment per month"))
    lines = []
    for agreement in slas:
        result = attainments.get(agreement.key)
        if result is None or (not result.worst_months and abs(result.trend or 0) < 0.005):
            continue
        worst = ", ".join(result.worst_months) or "none below target"
        trend = f"{result.trend:+.2f} points/month" if result.trend is not None else "no trend"
        lines.append((doc.text(f"{agreement_label(agreement)}: worst months {worst}; {trend}"),))
    if lines:
        blocks.append(doc.BulletList(items=tuple(lines)))
    elif not chart_name:
        blocks.append(doc.paragraph("No monthly data in the period."))
    return blocks


def _component_urls(service: Service) -> dict[str, str]:
    """Component name -> the URL of its record, for components the source links (the first
    by key where two share a name, so the pack stays the same)."""
    urls: dict[str, str] = {}
    for component in sorted(service.components, key=lambda c: c.key):
        if component.source is not None and component.source.url:
            urls.setdefault(component.name, component.source.url)
    return urls


def _named(names: Sequence[str], urls: Mapping[str, str]) -> tuple[doc.Inline, ...]:
    """Names separated by commas, each linking to its record where it has one."""
    nodes: list[doc.Inline] = []
    for number, name in enumerate(names):
        if number:
            nodes.append(doc.text(", "))
        nodes.append(doc.Link(text=name, url=urls[name]) if name in urls else doc.text(name))
    return tuple(nodes)


def _feasibility(
    findings: Sequence[FeasibilityFinding],
    slas: Mapping[str, Agreement],
    components: Mapping[str, str],
) -> list[doc.Block]:
    if not findings:
        return [
            doc.heading(2, "Feasibility"),
            doc.paragraph("Every target is within what the components' agreements allow."),
        ]
    rows = tuple(
        (
            (doc.text(_label(slas, f.agreement_key)),),
            (doc.text(f.service_target),),
            (doc.text(f.achievable),),
            _named(f.components, components),
        )
        for f in findings
    )
    return [
        doc.heading(2, "Feasibility"),
        doc.paragraph(
            "Targets may not exceed what the agreements of underlying components allow. "
            f"{len(findings)} target(s) do:"
        ),
        doc.Table(header=("Agreement", "Promised", "Components allow", "Responsible"), rows=rows),
    ]


def _breaches(
    measured: Sequence[Attainment], top: Sequence[Breach], slas: Mapping[str, Agreement]
) -> list[doc.Block]:
    total = sum(a.breached for a in measured)
    blocks: list[doc.Block] = [
        doc.heading(2, "Breaches"),
        doc.paragraph(f"{total} breach(es) in the period."),
    ]
    if top:
        rows = tuple(
            (
                reference(b.task_ref, "", b.url),
                (doc.text(_label(slas, b.agreement_key)),),
                (doc.text(b.start.date().isoformat()),),
                (doc.text(_late_text(b)),),
            )
            for b in top
        )
        blocks.append(doc.Table(header=("Task", "Agreement", "Started", "Took"), rows=rows))
    return blocks


def _late_text(breach: Breach) -> str:
    if breach.elapsed is None:
        return "-"
    took = duration_text(breach.elapsed)
    return f"{took} ({breach.overrun:.1f}x target)" if breach.overrun else took


def _csat(summary: CsatSummary | None, gaps: Sequence[Gap]) -> list[doc.Block]:
    heading = doc.heading(2, "Customer satisfaction")
    if summary is None or summary.average is None:
        see = _SEE_GAPS if any(g.kind is GapKind.NO_CSAT for g in gaps) else ""
        return [heading, doc.paragraph(f"No satisfaction answers in the period{see}.")]
    spread = ", ".join(f"{score}: {count}" for score, count in summary.distribution)
    text = (
        f"Average {summary.average:.2f} of 5 from {summary.responses} answer(s) "
        f"(answers per score {spread})."
    )
    if summary.drop is not None:
        change = "down" if summary.drop > 0 else "up"
        text += f" Last 3 months {change} {abs(summary.drop):.2f} against the months before."
    return [heading, doc.paragraph(text)]


def _gaps(gaps: Sequence[Gap], components: Mapping[str, str]) -> list[doc.Block]:
    heading = doc.heading(2, "Gaps")
    if not gaps:
        return [heading, doc.paragraph("Nothing is missing.")]
    items = tuple(_gap_item(gap, components) for gap in gaps)
    return [
        heading,
        doc.paragraph("Missing content is expected while SLM matures; fill it before next time."),
        doc.BulletList(items=items),
    ]


def _materials(materials: Sequence[Material]) -> list[doc.Block]:
    blocks: list[doc.Block] = [doc.heading(2, "Existing materials")]
    for kind, title in MATERIAL_SECTIONS:
        found = [m for m in materials if m.kind is kind]
        if kind is MaterialKind.IMPROVEMENT:
            found = [m for m in found if m.open]
        found.sort(key=lambda m: (m.title, m.number or "", m.key))
        blocks.append(doc.heading(3, title))
        if not found:
            blocks.append(doc.paragraph("None found."))
            continue
        blocks.append(doc.BulletList(items=tuple(_material_item(m) for m in found)))
    return blocks


def _gap_item(gap: Gap, components: Mapping[str, str]) -> tuple[doc.Inline, ...]:
    """A gap's subject (linking to the component it is about) and what to do."""
    url = components.get(gap.subject) if gap.kind is GapKind.COMPONENT_WITHOUT_OLA else None
    if url is None:
        return (doc.text(f"{gap.subject}: ", strong=True), doc.text(gap.detail))
    return (doc.Link(text=gap.subject, url=url), doc.text(f": {gap.detail}"))


def _material_item(material: Material) -> tuple[doc.Inline, ...]:
    if material.kind is MaterialKind.PREVIOUS_DECISION:  # "2026-01-05 Decision … (Ann, SLM-3)"
        return (doc.Link(text=material.title, url=material.url) if material.url
                else doc.text(material.title),)  # fmt: skip
    state = (
        ""
        if material.kind is MaterialKind.KNOWLEDGE
        else (" (open)" if material.open else " (closed)")
    )
    shown = material_reference(material)
    return (*shown, doc.text(state)) if state else shown
