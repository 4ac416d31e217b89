"""A seeded, realistic IT estate shared by the Jira and ServiceNow stand-ins.

`build_estate(seed, ...)` returns the same data for the same arguments: every random choice and
every sys_id comes from one `random.Random(seed)`, and timestamps are relative to `now` (default:
today 00:00 UTC, so the data is stable within a day).

The estate contains the gaps a real, half-mature SLM practice has (a service without owner, a
component without OLA, a person whose email Jira hides, ...). `Estate.deliberate` names them so
tests find them without hard-coding ids:

| key | what |
|---|---|
| service_without_owner | sys_id of a service whose owned_by is empty |
| component_without_ola | sys_id of a component no OLA / underpinning contract applies to |
| person_email_hidden | sys_id of a person (a service owner) whose email Jira Cloud hides |
| person_not_in_jira | sys_id of a person (a component owner) with no Jira account |
| person_not_assignable | sys_id of a person (no role; in Jira) Jira refuses as an assignee |
| service_special_name | sys_id of the service named with quotes, `^`, `=` and non-ASCII letters |
| service_without_csat | sys_id of a service with no CSAT answers at all |
| ola_stricter / ola_stricter_service_sla | an availability OLA stricter than its service's SLA |
| ola_looser / ola_looser_service_sla | an availability OLA looser than its service's SLA |
| relation_cycle | sys_id of a component in a dependency cycle |
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sandbox.estate.history import add_history
from sandbox.estate.ids import IdSource
from sandbox.estate.model import (
    Agreement,
    Component,
    Estate,
    Group,
    Person,
    Relation,
    Service,
    ServiceOffering,
)
from sandbox.estate.names import (
    COMPONENT_KINDS,
    FIRST_NAMES,
    LAST_NAMES,
    SERVICE_NAMES,
    SPECIAL_SERVICE_NAME,
    TITLES,
)

__all__ = ["REL_TYPE_DEPENDS_ON", "build_estate"]

CRITICALITY = {1: "1 - most critical", 2: "2 - somewhat critical", 3: "3 - less critical"}
AVAILABILITY_BY_TIER = {1: "99.9", 2: "99.5", 3: "99"}
ATTAINMENT_BY_TIER = {1: "95", 2: "90", 3: "90"}
RESOLUTION_TARGET = {
    "1": timedelta(hours=4),
    "2": timedelta(hours=8),
    "3": timedelta(days=3),
    "4": timedelta(days=5),
}
RESPONSE_TARGET = {"1": timedelta(minutes=15), "2": timedelta(minutes=30)}
REL_TYPE_DEPENDS_ON = "1a9cb166f1571100a92eb60da2bce5c5"  # stock sys_id of "Depends on::Used by"
PEOPLE_PER_SERVICE = 4


def build_estate(
    seed: int = 7, services: int = 12, sla_records: int = 5000, now: datetime | None = None
) -> Estate:
    """Build the estate; same arguments, same data (at least 3 services)."""
    if now is None:
        now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    ids = IdSource(rng)
    estate = Estate(seed=seed, now=now)
    _add_people(estate, rng, ids, 8 + PEOPLE_PER_SERVICE * max(services, 3))
    _add_services(estate, rng, ids, max(services, 3))
    _add_components(estate, rng, ids)
    _add_agreements(estate, rng, ids)
    add_history(estate, rng, ids, sla_records)
    return estate


def _past(rng: random.Random, now: datetime, max_days: int) -> datetime:
    return now - timedelta(seconds=rng.randint(3600, max_days * 86400))


NAME_RETRIES = 50  # draws of a free name before numbering one (small estates never get there)


def _add_people(estate: Estate, rng: random.Random, ids: IdSource, count: int) -> None:
    seen: set[str] = set()
    misses = 0
    while len(estate.people) < count:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        user_name = f"{first}.{last}".lower()
        if user_name in seen:
            misses += 1
            if misses < NAME_RETRIES:
                continue
            # A large estate outgrows the name lists: number namesakes, as directories do.
            user_name += str(sum(1 for taken in seen if taken.startswith(user_name)) + 1)
        misses = 0
        seen.add(user_name)
        estate.people.append(
            Person(
                sys_id=ids.sys_id(),
                user_name=user_name,
                first_name=first,
                last_name=last,
                name=f"{first} {last}",
                email=f"{user_name}@example.com",
                title=rng.choice(TITLES),
                jira_account_id=ids.account_id(),
                jira_name=(first[0] + last).lower(),
                sys_updated_on=_past(rng, estate.now, 900),
            )
        )


def _add_services(estate: Estate, rng: random.Random, ids: IdSource, count: int) -> None:
    people = estate.people
    for index in range(count):
        base = SERVICE_NAMES[index % len(SERVICE_NAMES)]
        name = base if index < len(SERVICE_NAMES) else f"{base} {index // len(SERVICE_NAMES) + 1}"
        tier = 1 + index % 3
        owner, business, sponsor = people[3 * index % len(people) : 3 * index % len(people) + 3]
        group = Group(ids.sys_id(), f"{name} Support", owner.sys_id, [], estate.now)
        group.members = [p.sys_id for p in rng.sample(people, 4)] + [owner.sys_id]
        group.sys_updated_on = _past(rng, estate.now, 600)
        estate.groups.append(group)
        estate.services.append(
            Service(
                sys_id=ids.sys_id(),
                number=f"SVC{index + 1:04d}",
                name=name,
                tier=tier,
                busines_criticality=CRITICALITY[tier],
                owner=owner.sys_id,
                business_owner=business.sys_id,
                lt_sponsor=sponsor.sys_id,
                support_group=group.sys_id,
                sys_updated_on=_past(rng, estate.now, 400),
            )
        )
    _mark_service_gaps(estate)
    _add_offerings(estate, rng, ids)
    _assign_csdm_classes(estate)


def _mark_service_gaps(estate: Estate) -> None:
    services = estate.services
    services[-1].owner = None
    estate.deliberate["service_without_owner"] = services[-1].sys_id
    services[1].name = SPECIAL_SERVICE_NAME
    estate.deliberate["service_special_name"] = services[1].sys_id
    hidden = estate.person(services[0].owner or "")
    hidden.jira_email_hidden = True
    estate.deliberate["person_email_hidden"] = hidden.sys_id
    # Two people with no role at all complete the directory (a leaver and a newcomer, whose
    # Jira account cannot be assigned issues yet).
    estate.people[-1].active = False
    estate.people[-2].jira_assignable = False
    estate.deliberate["person_not_assignable"] = estate.people[-2].sys_id
    estate.groups.append(
        Group(
            sys_id=IdSource.fixed("slm-process-owners"),
            name="SLM Process Owners",
            manager=estate.people[-2].sys_id,
            members=[estate.people[-2].sys_id],
            sys_updated_on=estate.now - timedelta(days=200),
        )
    )


def _assign_csdm_classes(estate: Estate) -> None:
    """Some services are CSDM business or technical services (tables extending cmdb_ci_service);
    drawn from no random numbers, so the rest of the estate stays as it was."""
    classes = ("cmdb_ci_service", "cmdb_ci_service_business", "cmdb_ci_service_technical")
    for index, service in enumerate(estate.services):
        service.sys_class_name = classes[index % 3]


def _add_offerings(estate: Estate, rng: random.Random, ids: IdSource) -> None:
    for service in estate.services[::3]:
        for level in ("Gold", "Silver")[: rng.randint(1, 2)]:
            estate.offerings.append(
                ServiceOffering(
                    ids.sys_id(),
                    f"{service.name} - {level}",
                    service.sys_id,
                    service.sys_updated_on,
                )
            )


def _add_components(estate: Estate, rng: random.Random, ids: IdSource) -> None:
    for index, service in enumerate(estate.services):
        kinds = rng.sample(COMPONENT_KINDS, rng.randint(2, 4))
        chain: list[Component] = []
        for class_name, suffix in kinds:
            owner = rng.choice(estate.people[: len(estate.people) - 2])
            kind = suffix.lower().replace(" ", "-")
            component = Component(
                sys_id=ids.sys_id(),
                name=f"{service.name.split()[0]}-{kind}-{index + 1:02d}",
                sys_class_name=class_name,
                owner=owner.sys_id,
                support_group=service.support_group,
                sys_updated_on=_past(rng, estate.now, 500),
            )
            estate.components.append(component)
            _relate(estate, ids, service.sys_id, component.sys_id)
            if chain:
                _relate(estate, ids, chain[-1].sys_id, component.sys_id)
            chain.append(component)
    _mark_component_gaps(estate, ids)


def _relate(estate: Estate, ids: IdSource, parent: str, child: str) -> None:
    estate.relations.append(
        Relation(ids.sys_id(), parent, child, REL_TYPE_DEPENDS_ON, estate.now - timedelta(days=90))
    )


def _mark_component_gaps(estate: Estate, ids: IdSource) -> None:
    components = estate.components
    # The first service's first two components depend on each other: a cycle.
    _relate(estate, ids, components[1].sys_id, components[0].sys_id)
    estate.deliberate["relation_cycle"] = components[0].sys_id
    not_in_jira = estate.person(components[2].owner or "")
    if not_in_jira.jira_email_hidden:  # keep the two gaps on different people
        not_in_jira = estate.people[-2]
        components[2].owner = not_in_jira.sys_id
    not_in_jira.in_jira = False
    estate.deliberate["person_not_in_jira"] = not_in_jira.sys_id
    estate.deliberate["component_without_ola"] = components[-1].sys_id


def _add_agreements(estate: Estate, rng: random.Random, ids: IdSource) -> None:
    for service in estate.services:
        _add_service_slas(estate, ids, service)
    for component in estate.components[:-1]:  # the last one has no OLA on purpose
        _add_component_olas(estate, rng, ids, component)
    _mark_agreement_gaps(estate)


def _agreement(
    estate: Estate,
    ids: IdSource,
    kind: str,
    target: object,
    metric: str,
    percentage: str,
    priority: str | None,
    duration: timedelta | None,
) -> Agreement:
    is_service = isinstance(target, Service)
    assert isinstance(target, Service | Component)
    field_name = "business_service" if is_service else "cmdb_ci"
    condition = f"{field_name}={target.sys_id}" + (f"^priority={priority}" if priority else "")
    label = {"availability": "Availability", "response": "Response", "resolution": "Resolution"}
    name = f"{target.name} - {label[metric]}" + (f" P{priority}" if priority else "")
    agreement = Agreement(
        sys_id=ids.sys_id(),
        name=f"{kind if kind != 'Underpinning contract' else 'UC'}: {name}",
        type=kind,
        metric=metric,
        target_percentage=percentage,
        duration=duration,
        applies_to=target.sys_id,
        applies_to_table="cmdb_ci_service" if is_service else "cmdb_ci",
        priority=priority,
        collection="incident",
        condition=condition,
        sys_updated_on=estate.now - timedelta(days=120, seconds=len(estate.agreements)),
    )
    estate.agreements.append(agreement)
    return agreement


def _add_service_slas(estate: Estate, ids: IdSource, service: Service) -> None:
    attainment = ATTAINMENT_BY_TIER[service.tier]
    _agreement(
        estate, ids, "SLA", service, "availability", AVAILABILITY_BY_TIER[service.tier], None, None
    )
    for priority, target in RESPONSE_TARGET.items():
        _agreement(estate, ids, "SLA", service, "response", attainment, priority, target)
    for priority, target in RESOLUTION_TARGET.items():
        _agreement(estate, ids, "SLA", service, "resolution", attainment, priority, target)


def _add_component_olas(
    estate: Estate, rng: random.Random, ids: IdSource, component: Component
) -> None:
    kind = "Underpinning contract" if "cloud" in component.sys_class_name else "OLA"
    _agreement(
        estate, ids, kind, component, "availability", rng.choice(("99.9", "99.95")), None, None
    )
    for priority in ("1", "2"):
        half = RESOLUTION_TARGET[priority] / 2
        _agreement(estate, ids, kind, component, "resolution", "95", priority, half)


def _services_of(estate: Estate) -> dict[str, Service]:
    """Each component's service (its first relation from a service), for every component."""
    services = {s.sys_id: s for s in estate.services}
    found: dict[str, Service] = {}
    for relation in estate.relations:
        if relation.parent in services:
            found.setdefault(relation.child, services[relation.parent])
    return found


def _availability(estate: Estate, applies_to: str) -> Agreement:
    return next(
        a for a in estate.agreements if a.applies_to == applies_to and a.metric == "availability"
    )


def _mark_agreement_gaps(estate: Estate) -> None:
    """Make one OLA looser and one stricter than the availability SLA of its service."""
    service_of = _services_of(estate)
    tier1 = [c for c in estate.components[:-1] if service_of[c.sys_id].tier == 1]
    for key, component, percentage in (
        ("ola_looser", tier1[0], "99.5"),
        ("ola_stricter", tier1[-1], "99.99"),
    ):
        ola = _availability(estate, component.sys_id)
        ola.target_percentage = percentage
        estate.deliberate[key] = ola.sys_id
        service_sla = _availability(estate, service_of[component.sys_id].sys_id)
        estate.deliberate[f"{key}_service_sla"] = service_sla.sys_id
