"""Gaps: the sandbox's deliberate holes are all listed, and none stops the review."""

from __future__ import annotations

from datetime import date
from typing import Any

from review import (
    CsatAccumulator,
    GapKind,
    RaciMatrix,
    RoleHolders,
    SkippedRecord,
    build_plan,
    cycle_for,
    find_gaps,
)


def _gaps(estate: Any, key: str, **kwargs):  # type: ignore[no-untyped-def]
    service = estate.service(key)
    period = cycle_for(date(2025, 6, 1)).period
    responses = CsatAccumulator(period).add_all(estate.csat).summary(key).responses
    return find_gaps(service, estate.agreements, csat_responses=responses, **kwargs)


def test_service_without_owner_is_a_gap(estate: Any) -> None:
    """The service whose record names no owner shows a no-owner gap."""
    gaps = _gaps(estate, estate.raw.deliberate["service_without_owner"])
    assert [g.kind for g in gaps if g.kind is GapKind.NO_OWNER] == [GapKind.NO_OWNER]


def test_component_without_ola_is_a_gap_naming_the_component(estate: Any) -> None:
    """The component no OLA applies to is named in its service's gaps."""
    component_key = estate.raw.deliberate["component_without_ola"]
    service = next(s for s in estate.services if component_key in {c.key for c in s.components})
    name = next(c.name for c in service.components if c.key == component_key)
    gaps = _gaps(estate, service.key)
    assert [g.subject for g in gaps if g.kind is GapKind.COMPONENT_WITHOUT_OLA] == [name]


def test_service_without_csat_is_a_gap(estate: Any) -> None:
    """No satisfaction answers in the period: a CSAT gap; other services have none."""
    silent = estate.raw.deliberate["service_without_csat"]
    assert any(g.kind is GapKind.NO_CSAT for g in _gaps(estate, silent))
    other = estate.services[0].key
    assert not any(g.kind is GapKind.NO_CSAT for g in _gaps(estate, other))


def test_people_the_target_cannot_resolve_are_gaps(estate: Any) -> None:
    """The owner Jira hides and the CI owner Jira lacks, reported by the target, become gaps."""
    hidden = estate.people[estate.raw.deliberate["person_email_hidden"]]
    missing = estate.people[estate.raw.deliberate["person_not_in_jira"]]
    gaps = _gaps(estate, estate.services[0].key, unresolved=[hidden, missing, hidden])
    subjects = [g.subject for g in gaps if g.kind is GapKind.UNRESOLVED_PERSON]
    assert subjects == [f"{hidden.name} <{hidden.email}>", f"{missing.name} <{missing.email}>"]


def test_skipped_records_are_one_gap_per_stream_with_examples(estate: Any) -> None:
    """Records the mapping skipped for this service are counted per stream, with examples."""
    key = estate.services[0].key
    skipped = [
        SkippedRecord(
            stream="sla_record",
            record_id=f"r{n}",
            field="start",
            reason="not a date",
            service_key=key,
        )
        for n in range(5)
    ] + [
        SkippedRecord(
            stream="csat_response", record_id="x", reason="no rating", service_key="other"
        )
    ]
    (gap,) = [g for g in _gaps(estate, key, skipped=skipped) if g.kind is GapKind.SKIPPED_RECORDS]
    assert gap.subject == "5 sla_record record(s) skipped"
    assert "r0 (start: not a date)" in gap.detail and "2 more" in gap.detail


def test_a_well_kept_service_has_no_gaps(estate: Any) -> None:
    """A service with owner, SLAs, OLAs on every component and CSAT has nothing missing."""
    deliberate = set(estate.raw.deliberate.values())
    clean = [
        s for s in estate.services
        if s.key not in deliberate and not {c.key for c in s.components} & deliberate
    ]  # fmt: skip
    assert clean and _gaps(estate, clean[0].key) == ()


def test_unowned_service_still_gets_its_review_with_an_unassigned_subtask(
    estate: Any, matrix: RaciMatrix, holders: RoleHolders
) -> None:
    """No owner: the review is still planned; the owner's sub-task is unassigned, a gap says why."""
    key = estate.raw.deliberate["service_without_owner"]
    plan = build_plan(cycle_for(date(2025, 6, 1)), matrix, holders, estate.services, [key])
    propose = next(t for t in plan.tickets if t.key.endswith(f"{key}:propose_improvements"))
    assert propose.assignee is None
    assert any(g.service_key == key and g.subject == "Service Level Manager" for g in plan.gaps)
