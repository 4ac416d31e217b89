"""Lessons learned and update policies carry content: the cycle summary's numbers (targets
missed and infeasible across the reviews, gaps by kind, lateness, decisions, improvements) and
the policy changes with the policy document."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from review import (
    Attainment,
    AttainmentStatus,
    FeasibilityFinding,
    Gap,
    GapKind,
    Metric,
    ReviewPack,
    Service,
    cycle_for,
)
from review import document as doc
from review.cycle_summary import (
    ActivityTiming,
    lessons_learned_document,
    update_policies_document,
)
from review.model import Decision, Material, MaterialKind, Meeting

PERIOD = cycle_for(date(2026, 3, 1)).period
DUE = date(2026, 3, 1)


def _attainment(key: str, status: AttainmentStatus) -> Attainment:
    return Attainment(
        agreement_key=key, period=PERIOD, measured=10, breached=1, attainment=0.9,
        target_percent=95.0, status=status,
    )  # fmt: skip


def _finding(service: str, key: str) -> FeasibilityFinding:
    return FeasibilityFinding(
        service_key=service, agreement_key=key, metric=Metric.AVAILABILITY,
        service_target="99.9 %", achievable="99.5 %", components=("db",), explanation="-",
    )  # fmt: skip


def _gap(service: str, kind: GapKind, subject: str) -> Gap:
    return Gap(kind=kind, service_key=service, subject=subject, detail="-")


def _decision(service: str, text: str, day: int, *, policy: bool = False) -> Decision:
    return Decision(
        text=text, author="Sam Owner", recorded=datetime(2026, 4, day, 9, tzinfo=UTC),
        policy=policy, ticket=f"SLM-{day}", service_key=service,
    )  # fmt: skip


def _pack(key: str, name: str, **parts: object) -> ReviewPack:
    return ReviewPack(
        service=Service(key=key, name=name),
        period=PERIOD,
        body=doc.Document(),
        **parts,  # type: ignore[arg-type]
    )


PAYROLL = _pack(
    "payroll",
    "Payroll",
    attainments=(
        _attainment("a1", AttainmentStatus.MISSED),
        _attainment("a2", AttainmentStatus.MET),
        _attainment("a3", AttainmentStatus.MISSED),
    ),
    findings=(_finding("payroll", "a1"),),
    gaps=(
        _gap("payroll", GapKind.NO_CSAT, "customer satisfaction"),
        _gap("payroll", GapKind.COMPONENT_WITHOUT_OLA, "db"),
        _gap("payroll", GapKind.COMPONENT_WITHOUT_OLA, "app"),
    ),
    meeting=Meeting(
        decisions=(
            _decision("payroll", "keep the target", 3),
            _decision("payroll", "tier 1 reviewed twice a year", 2, policy=True),
        ),
        improvements=(
            Material(
                key="improvement:SLM-40",
                kind=MaterialKind.IMPROVEMENT,
                title="SLM-40 Add an OLA for db",
                service_key="payroll",
                open=True,
            ),
        ),
    ),
)
EMAIL = _pack(
    "email",
    "E-mail",
    attainments=(_attainment("b1", AttainmentStatus.AT_RISK),),
    findings=(_finding("email", "b1"), _finding("email", "b2")),
    gaps=(_gap("email", GapKind.NO_CSAT, "customer satisfaction"),),
    meeting=Meeting(
        improvements=(
            Material(
                key="improvement:SLM-41",
                kind=MaterialKind.IMPROVEMENT,
                title="SLM-41 Faster restores",
                service_key="email",
                open=False,
            ),
        ),
    ),
)


def _at(day: date, hour: int = 17) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


TIMINGS = (
    ActivityTiming(title="Schedule: Payroll", due=DUE, resolved=_at(DUE)),  # on the day
    ActivityTiming(title="Prepare: Payroll", due=DUE, resolved=_at(DUE + timedelta(days=3))),
    ActivityTiming(title="Prepare: E-mail", due=DUE, resolved=_at(DUE + timedelta(days=12))),
    ActivityTiming(title="Participate: E-mail", due=DUE, resolved=_at(DUE - timedelta(days=2))),
    ActivityTiming(title="Lessons learned", due=DUE, resolved=None),  # open: not "done late"
    ActivityTiming(title="No due", due=None, resolved=_at(DUE)),
)


def _rows(document: doc.Document, first_header: str) -> list[list[str]]:
    table = next(
        b for b in document.blocks if isinstance(b, doc.Table) and b.header[0] == first_header
    )
    return [["".join(doc.plain_text(n) for n in cell) for cell in row] for row in table.rows]


def test_lateness_is_days_done_after_the_planned_due_date() -> None:
    assert [t.days_late for t in TIMINGS] == [0, 3, 12, 0, 0, 0]


def test_lessons_learned_sums_up_the_cycle() -> None:
    """Services reviewed, targets missed and infeasible across them, gaps by kind, activities
    done late (most late first) with how much, decisions and improvements raised."""
    summary = lessons_learned_document("2026", [PAYROLL, EMAIL], TIMINGS)
    text = doc.document_text(summary)
    assert (
        "2 service(s) reviewed; across them 2 of 4 target(s) missed and 3 target(s) beyond "
        "what the components' agreements allow (infeasible)." in text
    )
    assert _rows(summary, "Service") == [
        ["E-mail", "0", "2", "1", "0"],
        ["Payroll", "2", "1", "3", "2"],
    ]
    assert "services without customer satisfaction answers: 2" in text
    assert "components without an OLA or underpinning contract: 2" in text
    assert "2 of 4 finished activity sub-task(s) were done after their planned due date." in text
    assert _rows(summary, "Sub-task") == [
        ["Prepare: E-mail", "2026-03-01", "2026-03-13", "12 day(s)"],
        ["Prepare: Payroll", "2026-03-01", "2026-03-04", "3 day(s)"],
    ]
    assert _rows(summary, "Date") == [
        ["2026-04-02", "Sam Owner", "[POLICY] tier 1 reviewed twice a year", "Payroll"],
        ["2026-04-03", "Sam Owner", "keep the target", "Payroll"],
    ]
    assert "2 improvement ticket(s), 1 still open:" in text
    assert "Payroll: SLM-40 Add an OLA for db (open)" in text
    assert "E-mail: SLM-41 Faster restores (done)" in text


def test_an_empty_cycle_says_what_is_missing_instead_of_failing() -> None:
    text = doc.document_text(lessons_learned_document("2026", [], []))
    assert "0 service(s) reviewed; across them 0 of 0 target(s) missed" in text
    assert "No gap in the reviewed services." in text
    assert "0 of 0 finished activity sub-task(s) were done after their planned due date." in text
    assert "No decision was recorded in the reviews." in text
    assert "No improvement ticket was linked to the reviews." in text


def test_update_policies_links_the_document_and_lists_the_policy_decisions_only() -> None:
    body = update_policies_document("https://intranet.example/slm-policy", [PAYROLL, EMAIL])
    links = [
        n
        for b in body.blocks
        if isinstance(b, doc.Paragraph)
        for n in b.content
        if isinstance(n, doc.Link)
    ]
    assert [link.url for link in links] == ["https://intranet.example/slm-policy"]
    assert _rows(body, "Date") == [
        ["2026-04-02", "Sam Owner", "[POLICY] tier 1 reviewed twice a year", "Payroll"],
    ]
    assert "Decisions marked as policy changes in the reviews: 1." in doc.document_text(body)


def test_update_policies_without_a_policy_url_says_how_to_set_it() -> None:
    text = doc.document_text(update_policies_document(None, [EMAIL]))
    assert "not configured (set review.policy_url in the settings" in text
    assert "No decision of this cycle's reviews is marked as a policy change" in text
