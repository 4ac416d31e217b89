"""What the closing activities of a cycle carry: the lessons-learned summary and the policy
changes to make.

"Facilitate lessons learned" gets a summary of the cycle it is about, from the cycle's review
packs and the tickets' dates: the services reviewed; the targets missed and the targets beyond
what the components allow (infeasible), across them; the gaps by kind; the activities done
late and by how much (a sub-task's done date against the due date the RACI matrix planned,
`due_offset_days`: people moving a due date, such as the meeting date on the scheduling
sub-task, do not hide lateness); and the decisions and improvement tickets raised.
"Update process policies" links the policy document (`review.policy_url`) and lists the
decisions marked as policy changes (`Decision (policy):`). Pure: the sync layer passes the
packs (with their meetings) and each sub-task's dates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from review import document as doc
from review.meeting import decision_table
from review.model import AttainmentStatus, Decision, GapKind, ReviewPack
from review.references import material_reference

LESSONS_ACTIVITY = "lessons_learned"
POLICIES_ACTIVITY = "update_policies"
SUMMARY_HEADING = "Cycle summary"
POLICY_HEADING = "Policy changes"
GAP_TITLES = {
    GapKind.NO_OWNER: "services without an owner",
    GapKind.NO_BUSINESS_OWNER: "services without a business owner",
    GapKind.NO_LT_SPONSOR: "services without an LT sponsor",
    GapKind.NO_AGREEMENT: "services without a service level agreement",
    GapKind.TARGET_WITHOUT_DATA: "targets without records in the period",
    GapKind.COMPONENT_WITHOUT_OLA: "components without an OLA or underpinning contract",
    GapKind.NO_CSAT: "services without customer satisfaction answers",
    GapKind.UNRESOLVED_PERSON: "people the target could not find",
    GapKind.SKIPPED_RECORDS: "records skipped while reading",
    GapKind.UNKNOWN_SELECTION: "selected services that do not exist",
}


class ActivityTiming(BaseModel):
    """One activity sub-task's planned due date and when it was done (None: still open)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    due: date | None
    resolved: datetime | None

    @property
    def days_late(self) -> int:
        """Days it was done after its due date (0: on time, still open, or no due date)."""
        if self.due is None or self.resolved is None:
            return 0
        return max((self.resolved.date() - self.due).days, 0)


def lessons_learned_document(
    cycle_id: str, packs: Sequence[ReviewPack], timings: Sequence[ActivityTiming]
) -> doc.Document:
    """The cycle summary the lessons-learned sub-task carries."""
    ordered = sorted(packs, key=lambda p: (p.service.name, p.service.key))
    names = {p.service.key: p.service.name for p in ordered}
    decisions = [d for p in ordered if p.meeting for d in p.meeting.decisions]
    blocks: list[doc.Block] = [
        doc.heading(2, SUMMARY_HEADING),
        doc.paragraph(
            f"Cycle {cycle_id}, from its review tickets; refreshed at each sync until the "
            "cycle is closed."
        ),
        *_services(ordered),
        *_gaps(ordered),
        *_late(timings),
        doc.heading(3, "Decisions"),
        decision_table(decisions, services=names)
        if decisions
        else doc.paragraph("No decision was recorded in the reviews."),
        *_improvements(ordered),
    ]
    return doc.Document(blocks=tuple(blocks))


def update_policies_document(policy_url: str | None, packs: Sequence[ReviewPack]) -> doc.Document:
    """The policy document and the decisions marked as policy changes, for "Update process
    policies"."""
    names = {p.service.key: p.service.name for p in packs}
    changes = policy_decisions(packs)
    where: doc.Paragraph = (
        doc.paragraph("Policy document: ", doc.Link(text=policy_url, url=policy_url))
        if policy_url
        else doc.paragraph(
            "Policy document: not configured (set review.policy_url in the settings to link it "
            "here)."
        )
    )
    listed: doc.Block = (
        decision_table(changes, services=names)
        if changes
        else doc.paragraph(
            "No decision of this cycle's reviews is marked as a policy change (\"Decision "
            '(policy): …" comments).'
        )
    )
    return doc.Document(
        blocks=(
            doc.heading(2, POLICY_HEADING),
            where,
            doc.paragraph(f"Decisions marked as policy changes in the reviews: {len(changes)}."),
            listed,
        )
    )


def policy_decisions(packs: Sequence[ReviewPack]) -> list[Decision]:
    """Every decision marked as a policy change across the packs, oldest first."""
    found = [d for p in packs if p.meeting for d in p.meeting.decisions if d.policy]
    return sorted(found, key=lambda d: (d.recorded, d.ticket, d.text))


def _services(packs: Sequence[ReviewPack]) -> list[doc.Block]:
    missed = sum(a.status is AttainmentStatus.MISSED for p in packs for a in p.attainments)
    total = sum(len(p.attainments) for p in packs)
    infeasible = sum(len(p.findings) for p in packs)
    intro = doc.paragraph(
        f"{len(packs)} service(s) reviewed; across them {missed} of {total} target(s) missed "
        f"and {infeasible} target(s) beyond what the components' agreements allow (infeasible)."
    )
    if not packs:
        return [doc.heading(3, "Services reviewed"), intro]
    rows = tuple(
        (
            (doc.text(p.service.name),),
            (doc.text(str(sum(a.status is AttainmentStatus.MISSED for a in p.attainments))),),
            (doc.text(str(len(p.findings))),),
            (doc.text(str(len(p.gaps))),),
            (doc.text(str(len(p.meeting.decisions) if p.meeting else 0)),),
        )
        for p in packs
    )
    header = ("Service", "Targets missed", "Infeasible", "Gaps", "Decisions")
    return [doc.heading(3, "Services reviewed"), intro, doc.Table(header=header, rows=rows)]


def _gaps(packs: Sequence[ReviewPack]) -> list[doc.Block]:
    counts = Counter(g.kind for p in packs for g in p.gaps)
    heading = doc.heading(3, "Gaps by kind")
    if not counts:
        return [heading, doc.paragraph("No gap in the reviewed services.")]
    items = tuple(
        (doc.text(f"{GAP_TITLES.get(kind, kind.value)}: ", strong=True), doc.text(str(count)))
        for kind, count in sorted(counts.items(), key=lambda item: (-item[1], item[0].value))
    )
    return [heading, doc.BulletList(items=items)]


def _late(timings: Sequence[ActivityTiming]) -> list[doc.Block]:
    late = sorted((t for t in timings if t.days_late), key=lambda t: (-t.days_late, t.title))
    done = [t for t in timings if t.resolved is not None and t.due is not None]
    heading = doc.heading(3, "Activities done late")
    summary = doc.paragraph(
        f"{len(late)} of {len(done)} finished activity sub-task(s) were done after their "
        "planned due date."
    )
    if not late:
        return [heading, summary]
    rows = tuple(
        (
            (doc.text(t.title),),
            (doc.text(t.due.isoformat() if t.due else "-"),),
            (doc.text(t.resolved.date().isoformat() if t.resolved else "-"),),
            (doc.text(f"{t.days_late} day(s)"),),
        )
        for t in late
    )
    return [heading, summary, doc.Table(header=("Sub-task", "Due", "Done", "Late by"), rows=rows)]


def _improvements(packs: Sequence[ReviewPack]) -> list[doc.Block]:
    heading = doc.heading(3, "Improvements raised")
    items: list[tuple[doc.Inline, ...]] = []
    for pack in packs:
        for m in pack.meeting.improvements if pack.meeting else ():
            state = "open" if m.open else "done"
            shown = material_reference(m)
            items.append((doc.text(f"{pack.service.name}: "), *shown, doc.text(f" ({state})")))
    if not items:
        return [heading, doc.paragraph("No improvement ticket was linked to the reviews.")]
    opened = sum(m.open for p in packs if p.meeting for m in p.meeting.improvements)
    return [
        heading,
        doc.paragraph(f"{len(items)} improvement ticket(s), {opened} still open:"),
        doc.BulletList(items=tuple(items)),
    ]
