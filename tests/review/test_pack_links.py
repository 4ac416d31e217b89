"""Links in the pack: every record people may open is shown by its number (INC…, KB…, PRB…,
SLM-12) linking to it, never by a sys_id or an internal key; people by their name, linking to
their source record where known; the same data gives the same text."""

from __future__ import annotations

import re
from datetime import date, timedelta

from review import (
    Agreement,
    AgreementKind,
    Attainment,
    AttainmentStatus,
    Breach,
    Component,
    FeasibilityFinding,
    Gap,
    GapKind,
    Metric,
    Person,
    Service,
    SlaRecord,
    SourceRef,
    compute_attainment,
    cycle_for,
)
from review import document as doc
from review.model import Material, MaterialKind, Meeting, ReviewPack
from review.pack import build_pack
from review.report import render_html, render_markdown

PERIOD = cycle_for(date(2026, 3, 1)).period
SN = "https://sn.example"
HEX = re.compile(r"\b[0-9a-f]{32}\b")
SERVICE = Service(key="8f2b4c6d8e0a1b3c5d7e9f0a1b2c3d4e", name="Payroll", tier=1)
SLA = Agreement(
    key="0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    name="P1 resolution",
    kind=AgreementKind.SLA,
    metric=Metric.RESOLUTION,
    target_percent=95.0,
    window=timedelta(hours=4),
    priority="1",
    service_key=SERVICE.key,
)
BREACH_ID = "1c741bd70b2322007518478d83673af3"
BREACH = Breach(
    record_key=BREACH_ID,
    agreement_key=SLA.key,
    task_ref="INC0010001",
    start=PERIOD.start + timedelta(days=9),
    elapsed=timedelta(hours=6),
    overrun=1.5,
    url=f"{SN}/task_sla.do?sys_id={BREACH_ID}",
)
MISSED = Attainment(
    agreement_key=SLA.key,
    period=PERIOD,
    measured=20,
    breached=1,
    attainment=0.95,
    target_percent=95.0,
    status=AttainmentStatus.MISSED,
    top_breaches=(BREACH,),
)
PROBLEM_ID, ARTICLE_ID = "d7296d02c0a801670085e737da016e70", "3b0fccee0a0a0b9b00d4d3cc4a09f6d4"


def _material(key: str, kind: MaterialKind, title: str, **more: object) -> Material:
    return Material.model_validate({"key": key, "kind": kind, "title": title,
                                    "service_key": SERVICE.key, **more})  # fmt: skip


MATERIALS = (
    _material(
        PROBLEM_ID,
        MaterialKind.PROBLEM,
        "Mail queue stalls",
        number="PRB0040001",
        url=f"{SN}/problem.do?sys_id={PROBLEM_ID}",
    ),
    # As mirrored before numbers were mapped apart: the number leads the title.
    _material(
        ARTICLE_ID,
        MaterialKind.KNOWLEDGE,
        "KB0010002: Reset a password",
        number="KB0010002",
        url=f"{SN}/kb_knowledge.do?sys_id={ARTICLE_ID}",
    ),
    _material(
        "review:slm:2025:416e0c5f3d2a4b1c9e8f7a6b5c4d3e2f:review",
        MaterialKind.PREVIOUS_REVIEW,
        "Service review 2025, 12 months before this cycle",
        number="SLM-5",
        url="https://jira.example/browse/SLM-5",
        open=False,
    ),
    _material(
        "improvement:SLM-18",
        MaterialKind.IMPROVEMENT,
        "SLM-18 Add a second mail relay",
        number="SLM-18",
        url="https://jira.example/browse/SLM-18",
    ),
    _material("5e6f708192a3b4c5d6e7f8091a2b3c4d", MaterialKind.PROBLEM, "No number kept"),
)


def _pack(meeting: Meeting | None = None) -> ReviewPack:
    return build_pack(
        SERVICE, PERIOD, [SLA], {SLA.key: MISSED}, materials=MATERIALS,
        chart_name=f"attainment-{SERVICE.key}.png", meeting=meeting,
    )  # fmt: skip


def _links(document: doc.Document) -> dict[str, str]:
    found: dict[str, str] = {}
    for block in document.blocks:
        if isinstance(block, doc.Heading | doc.Paragraph):
            lines: tuple[tuple[doc.Inline, ...], ...] = (block.content,)
        elif isinstance(block, doc.BulletList):
            lines = block.items
        elif isinstance(block, doc.Table):
            lines = tuple(cell for row in block.rows for cell in row)
        else:
            lines = ()
        found.update({n.text: n.url for line in lines for n in line if isinstance(n, doc.Link)})
    return found


def test_records_link_to_their_source_with_their_number_as_text() -> None:
    """The breach, the problem, the article, the previous review and the improvement ticket
    link to their record, each with its number as the link text."""
    links = _links(_pack().body)
    assert links["INC0010001"] == f"{SN}/task_sla.do?sys_id={BREACH_ID}"
    assert links["PRB0040001"] == f"{SN}/problem.do?sys_id={PROBLEM_ID}"
    assert links["KB0010002"] == f"{SN}/kb_knowledge.do?sys_id={ARTICLE_ID}"
    assert links["SLM-5"] == "https://jira.example/browse/SLM-5"
    assert links["SLM-18"] == "https://jira.example/browse/SLM-18"


def test_no_sys_id_or_internal_key_is_shown() -> None:
    """Neither sys_ids (of materials, the service or its chart file) nor internal keys
    (`review:…`, `improvement:…`) appear in the pack's text; numbers are not repeated."""
    text = doc.document_text(_pack(Meeting()).body)
    assert HEX.search(text) is None, HEX.search(text)
    assert "review:" not in text and "improvement:" not in text
    assert "PRB0040001: Mail queue stalls (open)" in text
    assert "KB0010002: Reset a password" in text and "KB0010002: KB0010002" not in text
    assert "SLM-5: Service review 2025, 12 months before this cycle (closed)" in text
    assert "SLM-18: Add a second mail relay (open)" in text
    assert "No number kept (open)" in text


def test_the_same_data_renders_the_same_pack() -> None:
    """Rendering is deterministic: the same data gives the same document."""
    assert _pack().body == _pack().body
    reordered = build_pack(
        SERVICE, PERIOD, [SLA], {SLA.key: MISSED}, materials=MATERIALS[::-1],
        chart_name=f"attainment-{SERVICE.key}.png",
    )  # fmt: skip
    assert reordered.body == _pack().body


def test_a_kept_breach_remembers_its_sla_record() -> None:
    """A breach keeps the source of its SLA record, from which the sync layer builds its link."""
    ref = SourceRef(system="servicenow", table="task_sla", id=BREACH_ID)
    record = SlaRecord(
        key=BREACH_ID, agreement_key=SLA.key, task_ref="INC0010001", service_key=SERVICE.key,
        start=PERIOD.start + timedelta(days=9), stop=PERIOD.start + timedelta(days=9, hours=6),
        breached=True, elapsed=timedelta(hours=6), source=ref,
    )  # fmt: skip
    (breach,) = compute_attainment([SLA], [record], PERIOD)[SLA.key].top_breaches
    assert (breach.source, breach.task_ref) == (ref, "INC0010001")


def test_service_and_components_link_to_their_records() -> None:
    """The service's name and the components a feasibility finding or a gap names link to
    their CMDB records; a component without a link stays plain text."""
    db_id, app_id = "aa" * 16, "bb" * 16

    def ci(key: str, name: str, url: str | None) -> Component:
        source = SourceRef(system="servicenow", table="cmdb_ci_db_instance", id=key, url=url)
        return Component(key=key, name=name, source=source)

    service = SERVICE.model_copy(
        update={
            "source": SourceRef(system="servicenow", table="cmdb_ci_service", id=SERVICE.key,
                                url=f"{SN}/cmdb_ci_service.do?sys_id={SERVICE.key}"),
            "components": (ci(db_id, "payroll-db", f"{SN}/cmdb_ci_db_instance.do?sys_id={db_id}"),
                           ci(app_id, "payroll-app", None)),
        }
    )  # fmt: skip
    finding = FeasibilityFinding(
        service_key=SERVICE.key, agreement_key=SLA.key, metric=Metric.RESOLUTION,
        service_target="within 4 h", achievable="within 8 h",
        components=("payroll-db", "payroll-app"), explanation="-",
    )  # fmt: skip
    gap = Gap(kind=GapKind.COMPONENT_WITHOUT_OLA, service_key=SERVICE.key,
              subject="payroll-db", detail="no OLA")  # fmt: skip
    pack = build_pack(service, PERIOD, [SLA], {SLA.key: MISSED}, findings=[finding], gaps=[gap])
    links = _links(pack.body)
    assert links["Payroll"] == f"{SN}/cmdb_ci_service.do?sys_id={SERVICE.key}"
    assert links["payroll-db"] == f"{SN}/cmdb_ci_db_instance.do?sys_id={db_id}"
    assert "payroll-app" not in links
    text = doc.document_text(pack.body)
    assert "payroll-db, payroll-app" in text and "payroll-db: no OLA" in text


OWNER_ID = "cc" * 16
OWNER_URL = f"{SN}/sys_user.do?sys_id={OWNER_ID}"


def _owned(url: str | None) -> ReviewPack:
    owner = Person(
        email="ann.lee@example.com", name="Ann <Lee>",
        source=SourceRef(system="servicenow", table="sys_user", id=OWNER_ID, url=url),
    )  # fmt: skip
    service = SERVICE.model_copy(update={"owner": owner})
    return build_pack(service, PERIOD, [SLA], {SLA.key: MISSED}, meeting=Meeting())


def test_people_link_to_their_source_record_by_name_in_the_reports() -> None:
    """The service owner (status summary, invitees) links to their sys_user record in the HTML
    and Markdown report, the link text their name; the sys_id is in no visible text."""
    body = _owned(OWNER_URL).body
    mentions = [
        n
        for b in body.blocks
        if isinstance(b, doc.BulletList)
        for item in b.items
        for n in item
        if isinstance(n, doc.Mention)
    ]
    assert mentions and {m.url for m in mentions} == {OWNER_URL}
    page = render_html(body, title="Payroll")
    assert (
        f'<a class="mention" href="{OWNER_URL}" title="ann.lee@example.com">@Ann &lt;Lee&gt;</a>'
        in page
    )
    assert HEX.search(re.sub(r'href="[^"]*"', "", page)) is None
    assert f"[@Ann \\<Lee\\>](<{OWNER_URL}>)" in render_markdown(body)
    assert HEX.search(doc.document_text(body)) is None


def test_a_person_without_a_known_record_is_a_plain_mention() -> None:
    body = _owned(None).body
    assert '<a class="mention"' not in render_html(body, title="Payroll")
    assert '<span class="mention" title="ann.lee@example.com">@Ann &lt;Lee&gt;</span>' in (
        render_html(body, title="Payroll")
    )


def test_a_mention_without_a_link_hashes_as_before() -> None:
    """Tickets whose people have no link keep their spec hash: no spurious update."""
    plain = doc.Mention(name="Ann", email="a@example.com")
    assert plain.model_dump() == {"type": "mention", "name": "Ann", "email": "a@example.com"}
    linked = plain.model_copy(update={"url": OWNER_URL})
    assert linked.model_dump()["url"] == OWNER_URL
    assert doc.Mention.model_validate(linked.model_dump()) == linked
