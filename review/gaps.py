"""Gaps: content a review is missing, listed in its pack instead of stopping it (seed policy).

"Maturing service level management is iterative and incremental; service reviews will inevitably
involve missing content that is created over time." Each gap names what is missing and what to do
about it, so the next review has it.

Every target of the service without records in the period is a gap too
(`target_without_data_gap`): no data is not a met target, and the pack says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from review.model import Agreement, Gap, GapKind, Person, Service, SkippedRecord

EXAMPLES_SHOWN = 3


def find_gaps(
    service: Service,
    agreements: Iterable[Agreement],
    *,
    csat_responses: int,
    skipped: Iterable[SkippedRecord] = (),
    unresolved: Iterable[Person] = (),
) -> tuple[Gap, ...]:
    """Every gap of one service: owner, business owner, LT sponsor, agreements, OLAs, CSAT,
    people, skipped records. (Targets without records: `target_without_data_gap`, added by the
    pack, which has the attainment.)"""
    agreements = tuple(agreements)
    gaps: list[Gap] = []
    if service.owner is None:
        gaps.append(_gap(service, GapKind.NO_OWNER, "service owner", _NO_OWNER))
    if service.business_owner is None:
        gaps.append(_gap(service, GapKind.NO_BUSINESS_OWNER, "business owner", _NO_BUSINESS_OWNER))
    if service.lt_sponsor is None:
        gaps.append(_gap(service, GapKind.NO_LT_SPONSOR, "LT sponsor", _NO_LT_SPONSOR))
    if not any(a.service_key == service.key and not a.component_key for a in agreements):
        gaps.append(_gap(service, GapKind.NO_AGREEMENT, "service level agreement", _NO_SLA))
    covered = {a.component_key for a in agreements if a.component_key}
    for component in sorted(service.components, key=lambda c: (c.name, c.key)):
        if component.key not in covered:
            gaps.append(_gap(service, GapKind.COMPONENT_WITHOUT_OLA, component.name, _NO_OLA))
    if csat_responses == 0:
        gaps.append(_gap(service, GapKind.NO_CSAT, "customer satisfaction", _NO_CSAT))
    gaps.extend(unresolved_gaps(service, unresolved))
    gaps.extend(skipped_gaps(service.key, skipped))
    return tuple(gaps)


def target_without_data_gap(agreement: Agreement, label: str, target: str) -> Gap:
    """The gap of a target with no records in the period: nobody can tell whether it is met.

    `label` and `target` are how the pack names it ("Resolution P1", "95 % within 4 h")."""
    return Gap(
        kind=GapKind.TARGET_WITHOUT_DATA,
        service_key=agreement.service_key,
        subject=f"{label} ({target})",
        detail=f"no records of {agreement.name!r} in the period, so nobody can say whether its "
        "target is met; check that the source attaches this agreement to its tasks (task SLAs, "
        "outages) and that the mapping reads them (slm-sync mapping preview --entity "
        "sla_record), or retire the agreement if it no longer applies",
    )


def unresolved_gaps(service: Service | None, people: Iterable[Person]) -> list[Gap]:
    """One gap per person the target could not resolve (deduplicated by email or name)."""
    seen: set[str] = set()
    gaps: list[Gap] = []
    for person in people:
        identity = (person.email or person.name).lower()
        if identity in seen:
            continue
        seen.add(identity)
        who = f"{person.name} <{person.email}>" if person.email else person.name
        gaps.append(
            Gap(
                kind=GapKind.UNRESOLVED_PERSON,
                service_key=service.key if service else None,
                subject=who,
                detail="not found, or not assignable, in the target system: add an entry under "
                "review.people (jira_account_id / jira_name / servicenow_sys_id), give the person "
                "an account, or (Jira) grant them the Assignable user permission in the project",
            )
        )
    return gaps


def unfilled_role_gap(
    service: Service | None, role_title: str, activity_names: Iterable[str]
) -> Gap:
    """The gap for a RACI role nobody holds (its sub-tasks go to the fallback assignee)."""
    where = f"service {service.name!r}" if service else "the review cycle"
    return Gap(
        kind=GapKind.UNRESOLVED_PERSON,
        service_key=service.key if service else None,
        subject=role_title,
        detail=f"nobody holds this role for {where} (activities: {'; '.join(activity_names)}); "
        "name the person on the service record or under review.roles in the settings",
    )


def skipped_gaps(service_key: str | None, skipped: Iterable[SkippedRecord]) -> list[Gap]:
    """One gap per source stream with records of this service the mapping had to skip."""
    by_stream: dict[str, list[SkippedRecord]] = defaultdict(list)
    for record in skipped:
        if record.service_key == service_key:
            by_stream[record.stream].append(record)
    gaps: list[Gap] = []
    for stream, records in sorted(by_stream.items()):
        examples = "; ".join(
            f"{r.record_id}" + (f" ({r.field}: {r.reason})" if r.field else f" ({r.reason})")
            for r in records[:EXAMPLES_SHOWN]
        )
        more = f" and {len(records) - EXAMPLES_SHOWN} more" if len(records) > EXAMPLES_SHOWN else ""
        gaps.append(
            Gap(
                kind=GapKind.SKIPPED_RECORDS,
                service_key=service_key,
                subject=f"{len(records)} {stream} record(s) skipped",
                detail=f"{examples}{more}; fix the source data or the field mapping",
            )
        )
    return gaps


def _gap(service: Service, kind: GapKind, subject: str, detail: str) -> Gap:
    return Gap(kind=kind, service_key=service.key, subject=subject, detail=detail)


_NO_OWNER = (
    "the service record names no owner (Service Level Manager); the catalog owner assigns one"
)
_NO_BUSINESS_OWNER = (
    "the service record names no business owner (who the service owner partners with to deliver "
    "value; invited to the review meeting); name one on the service record, or map the field "
    "that holds it (service.business_owner in the field mapping)"
)
_NO_LT_SPONSOR = (
    "the service record names no LT sponsor (the leadership team member accountable for the "
    "service); the review's accountable is the default LT sponsor (review.roles."
    "default_lt_sponsor) if one is set; name the sponsor on the service record, or map the field "
    "that holds it (service.lt_sponsor in the field mapping)"
)
_NO_SLA = "no SLA with a measurable target applies to the service; agree targets with the business"
_NO_OLA = "no OLA or underpinning contract applies to this component; agree one with its owner"
_NO_CSAT = "no satisfaction answers in the period; check the survey is sent for this service"
