"""The pack's status is honest: its headline is the worst measured target (NO DATA when nothing
is measured), every target without records is a gap saying what to do, and every "(see gaps)"
points at a gap the list holds."""

from __future__ import annotations

from datetime import date, timedelta

from review import (
    Agreement,
    AgreementKind,
    AttainmentAccumulator,
    AttainmentStatus,
    CsatAccumulator,
    GapKind,
    Metric,
    Person,
    ReviewPack,
    Service,
    SlaRecord,
    build_pack,
    cycle_for,
    find_gaps,
    render_markdown,
)
from review.document import document_text
from review.pack import headline_status

PERIOD = cycle_for(date(2026, 3, 1)).period
OWNER = Person(email="sam.owner@example.com", name="Sam Owner")
SERVICE = Service(key="svc-mail", name="Email", tier=2, owner=OWNER)
AVAILABILITY = Agreement(
    key="sla-avail", name="Email availability", kind=AgreementKind.SLA,
    metric=Metric.AVAILABILITY, target_percent=99.9, service_key="svc-mail",
)  # fmt: skip
RESOLUTION = Agreement(
    key="sla-p1", name="Email P1 resolution", kind=AgreementKind.SLA, metric=Metric.RESOLUTION,
    target_percent=95, window=timedelta(hours=4), priority="1", service_key="svc-mail",
)  # fmt: skip
AGREEMENTS = (AVAILABILITY, RESOLUTION)


def _met_records(agreement: Agreement, count: int = 10) -> list[SlaRecord]:
    start = PERIOD.start + timedelta(days=40)
    return [
        SlaRecord(
            key=f"{agreement.key}-{n}",
            agreement_key=agreement.key,
            task_ref=f"INC{n:04}",
            service_key="svc-mail",
            start=start,
            stop=start + timedelta(hours=1),
            breached=False,
            elapsed=timedelta(hours=1),
        )
        for n in range(count)
    ]


def _pack(service: Service = SERVICE, records: list[SlaRecord] | None = None) -> ReviewPack:
    attainments = AttainmentAccumulator(AGREEMENTS, PERIOD).add_all(records or []).results()
    csat = CsatAccumulator(PERIOD).summary(service.key)
    gaps = find_gaps(service, AGREEMENTS, csat_responses=csat.responses)
    return build_pack(service, PERIOD, AGREEMENTS, attainments, gaps=gaps, csat=csat)


def _summary_line(pack: ReviewPack) -> str:
    text = document_text(pack.body).splitlines()
    return text[text.index("Status summary") + 1]


def _gap_lines(markdown: str) -> str:
    return markdown[markdown.index("### Gaps") : markdown.index("### Existing materials")]


def test_a_pack_with_every_target_without_records_is_no_data_not_met() -> None:
    """No target has records: the headline is NO DATA (never a green MET) and says why."""
    line = _summary_line(_pack())
    assert line.startswith("[NO DATA] Email")
    assert "[MET]" not in line
    assert "2 targets, 0 met, 0 at risk, 0 missed, 2 without data" in line
    assert "No target has records in the period, so none can be judged (see gaps)." in line


def test_every_target_without_records_is_a_gap_naming_it_and_what_to_do() -> None:
    """Each target without records is listed under Gaps with its name, its target and a fix;
    "Nothing is missing" never stands beside "no records"."""
    pack = _pack()
    gaps = [g for g in pack.gaps if g.kind is GapKind.TARGET_WITHOUT_DATA]
    assert [g.subject for g in gaps] == [
        "Availability (99.9 % available)",
        "Resolution P1 (95 % within 4 h)",
    ]
    markdown = render_markdown(pack.body, title="Review")
    listed = _gap_lines(markdown)
    assert "Nothing is missing" not in listed
    assert "**Availability \\(99.9 % available\\):** no records of 'Email availability'" in listed
    assert "check that the source attaches this agreement to its tasks" in listed
    assert "mapping preview --entity sla\\_record" in listed


def test_the_headline_is_the_worst_measured_target_and_unmeasured_ones_are_gaps() -> None:
    """One target met, one without records: the headline is MET (of what was measured) and the
    unmeasured target is a gap, not silently passed."""
    pack = _pack(records=_met_records(RESOLUTION))
    line = _summary_line(pack)
    assert line.startswith("[MET] Email")
    assert "2 targets, 1 met, 0 at risk, 0 missed, 1 without data." in line
    assert "No target has records" not in line
    subjects = [g.subject for g in pack.gaps if g.kind is GapKind.TARGET_WITHOUT_DATA]
    assert subjects == ["Availability (99.9 % available)"]


def test_a_missing_business_owner_and_lt_sponsor_are_gaps_the_summary_points_at() -> None:
    """A missing business owner and LT sponsor are gaps saying what to do (name one on the
    service record, or map its field), and the summary's "(see gaps)" points at them."""
    pack = _pack()
    text = document_text(pack.body)
    assert "Business owner: not named (see gaps)" in text
    assert "LT sponsor: not named (see gaps)" in text
    by_kind = {g.kind: g for g in pack.gaps}
    assert by_kind[GapKind.NO_BUSINESS_OWNER].subject == "business owner"
    assert (
        "service.business_owner in the field mapping" in by_kind[GapKind.NO_BUSINESS_OWNER].detail
    )
    assert "review.roles.default_lt_sponsor" in by_kind[GapKind.NO_LT_SPONSOR].detail
    listed = _gap_lines(render_markdown(pack.body, title="Review"))
    assert "**business owner:**" in listed and "**LT sponsor:**" in listed


def test_see_gaps_is_only_written_beside_a_gap_the_list_holds() -> None:
    """A pack given no gaps for its people or CSAT says "not named" and "no answers" without
    sending the reader to a gap that is not there."""
    attainments = AttainmentAccumulator(AGREEMENTS, PERIOD).add_all(_met_records(RESOLUTION))
    pack = build_pack(SERVICE, PERIOD, AGREEMENTS, attainments.results(), gaps=())
    text = document_text(pack.body)
    assert "LT sponsor: not named" in text and "LT sponsor: not named (see gaps)" not in text
    assert "No satisfaction answers in the period." in text
    for line in text.splitlines():
        if "(see gaps)" in line:
            raise AssertionError(f"points at no gap: {line!r}")


def test_every_see_gaps_in_a_pack_from_find_gaps_has_its_gap() -> None:
    """With the service's own gaps, each "(see gaps)" has the gap it points at."""
    pack = _pack(service=SERVICE.model_copy(update={"owner": None}))
    text = document_text(pack.body)
    pointers = {
        "Service owner: not named (see gaps)": GapKind.NO_OWNER,
        "Business owner: not named (see gaps)": GapKind.NO_BUSINESS_OWNER,
        "LT sponsor: not named (see gaps)": GapKind.NO_LT_SPONSOR,
        "No satisfaction answers in the period (see gaps).": GapKind.NO_CSAT,
        "so none can be judged (see gaps)": GapKind.TARGET_WITHOUT_DATA,
    }
    kinds = {g.kind for g in pack.gaps}
    for pointer, kind in pointers.items():
        assert pointer in text, pointer
        assert kind in kinds, kind
    assert text.count("(see gaps)") == len(pointers)


def test_the_pack_text_is_the_same_when_the_data_is_the_same() -> None:
    """Built twice from the same data the pack is identical (gaps in the same order)."""
    first, second = _pack(), _pack()
    assert first.body == second.body and first.gaps == second.gaps
    reversed_gaps = build_pack(
        SERVICE, PERIOD, AGREEMENTS,
        AttainmentAccumulator(AGREEMENTS, PERIOD).results(),
        gaps=tuple(reversed(first.gaps)),
    )  # fmt: skip
    assert len(reversed_gaps.gaps) == len(first.gaps)  # the target gaps are not doubled
    assert [g.kind for g in reversed_gaps.gaps] == [g.kind for g in first.gaps]


def test_a_gap_kind_has_a_title_in_the_cycle_summary() -> None:
    """Every gap kind is named in words in the lessons-learned summary."""
    from review.cycle_summary import GAP_TITLES

    assert set(GAP_TITLES) == set(GapKind)


def test_the_headline_is_the_worst_measured_status() -> None:
    """MISSED beats AT RISK beats MET; targets without records do not count; none: NO DATA."""
    missed, at_risk, met, none = (
        AttainmentStatus.MISSED, AttainmentStatus.AT_RISK, AttainmentStatus.MET,
        AttainmentStatus.NO_DATA,
    )  # fmt: skip
    assert headline_status([met, none, missed, at_risk]) is missed
    assert headline_status([none, at_risk, met]) is at_risk
    assert headline_status([none, met]) is met
    assert headline_status([none, none]) is none and headline_status([]) is none
