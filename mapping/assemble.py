"""Assembling services: people resolved by reference, components attached to their services.

Runs after every stream is mapped. A reference that does not resolve (an owner not in the person
stream) keeps the service or component, without that person, and is reported as a
`SkippedRecord` for that field, so the review lists it as a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import structlog

from mapping.entities import ComponentDraft, PersonRef, ServiceDraft
from review import Component, Person, Service, SkippedRecord

log = structlog.get_logger("slm_sync.mapping")


def assemble(
    services: Iterable[ServiceDraft],
    components: Iterable[ComponentDraft],
    people: Mapping[str, Person],
    *,
    skipped: list[SkippedRecord] | None = None,
) -> tuple[Service, ...]:
    """Services with their people and components; unresolved references go to `skipped`."""
    report = skipped if skipped is not None else []
    by_service: dict[str, list[Component]] = {}
    for draft in components:
        component = _component(draft, people, report)
        for service_key in dict.fromkeys(draft.service_keys):
            by_service.setdefault(service_key, []).append(component)
    return tuple(
        _service(draft, people, tuple(by_service.get(draft.key, ())), report) for draft in services
    )


def _service(
    draft: ServiceDraft,
    people: Mapping[str, Person],
    components: tuple[Component, ...],
    report: list[SkippedRecord],
) -> Service:
    def person(field: str, ref: PersonRef | None) -> Person | None:
        return _resolve(ref, people, report, "service", draft.key, field, draft.key)

    return Service(
        key=draft.key,
        name=draft.name,
        tier=draft.tier,
        owner=person("owner", draft.owner),
        business_owner=person("business_owner", draft.business_owner),
        lt_sponsor=person("lt_sponsor", draft.lt_sponsor),
        components=components,
        source=draft.source,
    )


def _component(
    draft: ComponentDraft, people: Mapping[str, Person], report: list[SkippedRecord]
) -> Component:
    service_key = draft.service_keys[0] if draft.service_keys else None
    owner = _resolve(draft.owner, people, report, "component", draft.key, "owner", service_key)
    return Component(
        key=draft.key,
        name=draft.name,
        ci_class=draft.ci_class,
        owner=owner,
        depends_on=draft.depends_on,
        source=draft.source,
    )


def _resolve(
    ref: PersonRef | None,
    people: Mapping[str, Person],
    report: list[SkippedRecord],
    stream: str,
    record_id: str,
    field: str,
    service_key: str | None,
) -> Person | None:
    """The person `ref` names: from the person stream by id, else from its inline details."""
    if ref is None:
        return None
    if ref.id and ref.id in people:
        return people[ref.id]
    if ref.email or ref.name:
        return Person(email=ref.email, name=ref.name or ref.email or ref.id or "")
    reason = (
        f"{field} {ref.id!r} is not in the person stream (inactive, hidden or not readable); "
        f"the {stream} is kept without it"
    )
    log.warning(
        "mapping.reference_unresolved",
        stream=stream,
        record_id=record_id,
        field=field,
        reason=reason,
        service_key=service_key,
    )
    report.append(
        SkippedRecord(
            stream=stream, record_id=record_id, field=field, reason=reason, service_key=service_key
        )
    )
    return None
