"""The review meeting in the pack: date or "not scheduled yet", invitees from the RACI matrix,
attendance, an agenda that follows the sections, and decisions recorded by convention."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from config import load_raci
from review import (
    SECTION_TITLES,
    Agreement,
    AgreementKind,
    Attainment,
    AttainmentStatus,
    Component,
    Metric,
    Person,
    RaciMatrix,
    RoleHolders,
    Service,
    cycle_for,
)
from review import document as doc
from review.meeting import (
    AGENDA_HEADING,
    DECISIONS_HEADING,
    MEETING_HEADING,
    decision_from,
    invitees,
    parse_decision,
)
from review.model import Attendance, Decision, Material, MaterialKind, Meeting
from review.pack import build_pack

PERIOD = cycle_for(date(2026, 3, 1)).period
WHEN = datetime(2026, 3, 20, 10, 30, tzinfo=UTC)


def _p(name: str) -> Person:
    return Person(email=f"{name.lower().replace(' ', '.')}@example.com", name=name)


PO, CATALOG, SPONSOR = _p("Bob Black"), _p("Kim Catalog"), _p("Liam Sponsor")
OWNER, BUSINESS, CI_A, CI_B = _p("Sam Owner"), _p("Bea Business"), _p("Cora Ci"), _p("Cyril Ci")
HOLDERS = RoleHolders(
    slm_process_owner=PO, service_catalog_owner=CATALOG, default_lt_sponsor=SPONSOR
)
SERVICE = Service(
    key="svc-payroll",
    name="Payroll",
    tier=1,
    owner=OWNER,
    business_owner=BUSINESS,
    lt_sponsor=SPONSOR,
    components=(
        Component(key="c1", name="payroll-app", owner=CI_A),
        Component(key="c2", name="payroll-db", owner=CI_B),
        Component(key="c3", name="payroll-host", owner=CI_A),
    ),
)
SLA = Agreement(
    key="sla-1",
    name="P1 resolution",
    kind=AgreementKind.SLA,
    metric=Metric.AVAILABILITY,
    target_percent=99.0,
    service_key=SERVICE.key,
)
MISSED = Attainment(
    agreement_key="sla-1",
    period=PERIOD,
    measured=100,
    breached=5,
    attainment=0.95,
    target_percent=99.0,
    status=AttainmentStatus.MISSED,
)


def _texts(document: doc.Document) -> str:
    return doc.document_text(document)


def _headings(document: doc.Document) -> list[str]:
    return [
        "".join(doc.plain_text(n) for n in b.content)
        for b in document.blocks
        if isinstance(b, doc.Heading)
    ]


SEED = load_raci()  # the seed matrix shipped in config/raci.yaml


def _meeting(**changes: object) -> Meeting:
    base = Meeting(
        schedule_activity="Schedule service review with service owner and important stakeholders",
        invitees=invitees(SEED, SERVICE, HOLDERS),
    )
    return base.model_copy(update=changes)


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("Decision: raise the P1 target to 99.5 %", (False, "raise the P1 target to 99.5 %")),
        ("decision:   keep\n  the OLA", (False, "keep the OLA")),
        ("  DECISION (Policy): reviews every 6 months", (True, "reviews every 6 months")),
        ("Decision(policy):quarterly CSAT", (True, "quarterly CSAT")),
        ("Decision:", None),
        ("We made a decision: none", None),
        ("Decisions: plural is not the convention", None),
        ("Decision (later): not a policy marker", None),
    ],
)
def test_decisions_follow_the_documented_convention(
    comment: str, expected: tuple[bool, str] | None
) -> None:
    """A comment records a decision only when it starts with `Decision:` (any case) or
    `Decision (policy):`; the words after the colon are the decision, on one line."""
    assert parse_decision(comment) == expected


def test_a_decision_keeps_who_wrote_it_when_and_where() -> None:
    found = decision_from(
        "Decision (policy): yearly reviews for tier 1",
        author="Sam Owner",
        recorded=WHEN,
        ticket="SLM-7",
        url="https://jira.example/browse/SLM-7",
        service_key=SERVICE.key,
    )
    assert found == Decision(
        text="yearly reviews for tier 1",
        author="Sam Owner",
        recorded=WHEN,
        policy=True,
        ticket="SLM-7",
        url="https://jira.example/browse/SLM-7",
        service_key=SERVICE.key,
    )
    assert decision_from("thanks all", author="x", recorded=WHEN, ticket="SLM-7") is None


def test_a_very_long_decision_is_cut_to_a_table_line() -> None:
    parsed = parse_decision("Decision: " + "word " * 300)
    assert parsed is not None and len(parsed[1]) == 500 and parsed[1].endswith("…")


def test_invitees_are_r_a_and_c_of_participate_plus_the_business_owner(
    matrix: RaciMatrix,
) -> None:
    """Seed: SLM process owner A/R, Service Level Manager R, CI owners R, Service Catalog Owner
    C; the LT (I) is not invited; the business owner is; each person once."""
    found = invitees(matrix, SERVICE, HOLDERS)
    assert [(i.person, i.roles) for i in found] == [
        (PO, ("SLM Process Owner (A/R)",)),
        (CATALOG, ("Service Catalog Owner (C)",)),
        (OWNER, ("Service Level Manager (R)",)),
        (CI_A, ("Configuration Item Owner (R)",)),
        (CI_B, ("Configuration Item Owner (R)",)),
        (BUSINESS, ("Business owner",)),
    ]
    assert SPONSOR not in [i.person for i in found]


def test_one_person_in_several_roles_is_invited_once_with_every_part(matrix: RaciMatrix) -> None:
    both = SERVICE.model_copy(update={"business_owner": OWNER})
    found = invitees(matrix, both, HOLDERS)
    owner = [i for i in found if i.person == OWNER]
    assert [o.roles for o in owner] == [("Service Level Manager (R)", "Business owner")]


def test_a_service_without_business_owner_invites_only_the_matrix(matrix: RaciMatrix) -> None:
    alone = SERVICE.model_copy(update={"business_owner": None})
    assert BUSINESS not in [i.person for i in invitees(matrix, alone, HOLDERS)]


def _pack(meeting: Meeting | None) -> doc.Document:
    return build_pack(
        SERVICE, PERIOD, [SLA], {"sla-1": MISSED}, chart_name="chart.png", meeting=meeting
    ).body


def test_before_scheduling_the_pack_says_not_scheduled_yet_and_invites_by_mention() -> None:
    body = _pack(_meeting())
    text = _texts(body)
    assert (
        'Not scheduled yet: the date appears here when the "Schedule service review with '
        'service owner and important stakeholders" sub-task is done' in text
    )
    mentions = [
        node
        for block in body.blocks
        if isinstance(block, doc.BulletList)
        for item in block.items
        for node in item
        if isinstance(node, doc.Mention)
    ]
    assert {m.email for m in mentions} >= {p.email for p in (PO, CATALOG, OWNER, CI_A, BUSINESS)}


def test_a_scheduled_meeting_shows_its_date_and_attendance() -> None:
    attendance = (
        Attendance(person=PO, attended=False),
        Attendance(person=OWNER, attended=True),
        Attendance(person=CI_A, attended=True),
    )
    text = _texts(_pack(_meeting(scheduled=date(2026, 4, 2), attendance=attendance)))
    assert "Date: 2026-04-02" in text
    assert "Not scheduled yet" not in text
    assert "Attended: Sam Owner, Cora Ci" in text
    assert "Not yet: Bob Black" in text


def test_the_pack_opens_with_the_meeting_and_its_agenda_follows_the_sections() -> None:
    body = _pack(_meeting())
    headings = _headings(body)
    assert headings[:2] == [MEETING_HEADING, AGENDA_HEADING]
    assert headings[-2:] == [DECISIONS_HEADING, "Improvement actions"]
    agenda = next(
        b
        for b in body.blocks[body.blocks.index(doc.heading(3, AGENDA_HEADING)) :]
        if isinstance(b, doc.BulletList)
    )
    items = ["".join(doc.plain_text(n) for n in item) for item in agenda.items]
    titles = [item.split(". ", 1)[1].split(":")[0] for item in items]
    assert titles == [*SECTION_TITLES, DECISIONS_HEADING]
    assert titles == [h for h in headings if h in titles]  # same order as the sections
    assert "2. Targets: 1 missed, 0 at risk of 1" in items


def test_a_local_report_has_no_meeting_sections() -> None:
    headings = _headings(_pack(None))
    assert MEETING_HEADING not in headings and DECISIONS_HEADING not in headings


def test_decisions_and_improvements_show_with_author_date_and_the_convention() -> None:
    decisions = (
        Decision(text="keep the target", author="Sam Owner", recorded=WHEN, ticket="SLM-8"),
        Decision(
            text="reviews twice a year",
            author="Bob Black",
            recorded=datetime(2026, 3, 19, tzinfo=UTC),
            policy=True,
            ticket="SLM-7",
            url="https://jira.example/browse/SLM-7",
        ),
    )
    improvements = (
        Material(key="improvement:SLM-30", kind=MaterialKind.IMPROVEMENT, title="SLM-30 Tune",
                 url="https://jira.example/browse/SLM-30", open=True),
        Material(key="improvement:SLM-31", kind=MaterialKind.IMPROVEMENT, title="SLM-31 Done",
                 open=False),
    )  # fmt: skip
    body = _pack(_meeting(decisions=decisions, improvements=improvements))
    table = next(b for b in body.blocks if isinstance(b, doc.Table) and "Decision" in b.header)
    rows = [[_cell(c) for c in row] for row in table.rows]
    assert rows == [
        ["2026-03-19", "Bob Black", "[POLICY] reviews twice a year", "SLM-7"],
        ["2026-03-20", "Sam Owner", "keep the target", "SLM-8"],
    ]
    text = _texts(body)
    assert "starting with Decision: (Decision (policy): for a change to the process policies)" in (
        text
    )
    assert "SLM-30 Tune (open)" in text and "SLM-31 Done (done)" in text
    assert "Decisions and actions: 2 decision(s) and 2 improvement ticket(s) recorded" in text


def test_nothing_recorded_yet_says_so() -> None:
    text = _texts(_pack(_meeting()))
    assert "No decision recorded yet." in text
    assert "No improvement ticket linked yet." in text


def _cell(cell: tuple[doc.Inline, ...]) -> str:
    return "".join(doc.plain_text(n) for n in cell)
