"""Who holds each RACI role, for one service or for the whole cycle.

Process-level roles come from configuration (`RoleHolders`, filled by the sync layer from the
settings); service-level roles from the service record:

| role | for a service | for the cycle |
|---|---|---|
| SLM process owner | configured | configured |
| Service catalog owner | configured | configured |
| LT | the service's LT sponsor, else the default one | the LT members, else the default sponsor |
| Service Level Manager | the service owner | the owners of the cycle's services |
| Configuration Item Owner | owners of the service's components | those of the cycle's services |

Several people in one role are deduplicated and ordered by name. For one service, every role has
at most one holder except Configuration Item Owner (`SHARED_SERVICE_ROLES`).

`responsible_parts` turns an activity's R roles into its R people: one `ResponsiblePart` per
distinct person, carrying every R role that person holds, so nobody gets the same activity twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from review.model import Person, Service
from review.raci import Activity, Letter, Role

# Roles several people hold for one service's review; every other role has at most one holder.
SHARED_SERVICE_ROLES = frozenset({Role.CI_OWNER})


class RoleHolders(BaseModel):
    """Role holders no service record names (seed: process owner, catalog owner, LT)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slm_process_owner: Person | None = None
    service_catalog_owner: Person | None = None
    lt_members: tuple[Person, ...] = ()
    default_lt_sponsor: Person | None = None


def identity(person: Person) -> str:
    """What makes two Person values the same person: the email, else the name (case-blind)."""
    return (person.email or person.name).strip().lower()


def unique_people(people: Iterable[Person | None]) -> tuple[Person, ...]:
    """People without None and without repeats, first occurrence kept, in the given order."""
    seen: set[str] = set()
    kept: list[Person] = []
    for person in people:
        if person is not None and identity(person) not in seen:
            seen.add(identity(person))
            kept.append(person)
    return tuple(kept)


def _by_name(people: Iterable[Person | None]) -> tuple[Person, ...]:
    present: list[Person] = [p for p in people if p is not None]
    present.sort(key=_name_order)
    return unique_people(present)


def _name_order(person: Person) -> tuple[str, str]:
    return person.name.lower(), identity(person)


def service_role_holders(role: Role, service: Service, holders: RoleHolders) -> tuple[Person, ...]:
    """The people holding `role` for one service's review."""
    if role is Role.SLM_PROCESS_OWNER:
        return unique_people([holders.slm_process_owner])
    if role is Role.SERVICE_CATALOG_OWNER:
        return unique_people([holders.service_catalog_owner])
    if role is Role.LT:
        return unique_people([service.lt_sponsor or holders.default_lt_sponsor])
    if role is Role.SERVICE_LEVEL_MANAGER:
        return unique_people([service.owner])
    return _by_name(component.owner for component in service.components)


def cycle_role_holders(
    role: Role, services: Sequence[Service], holders: RoleHolders
) -> tuple[Person, ...]:
    """The people holding `role` for a cycle-scoped activity over the cycle's services."""
    if role is Role.LT:
        return unique_people(holders.lt_members or (holders.default_lt_sponsor,))
    if role is Role.SERVICE_LEVEL_MANAGER:
        return _by_name(service.owner for service in services)
    if role is Role.CI_OWNER:
        return _by_name(c.owner for service in services for c in service.components)
    return service_role_holders(role, Service(key="-", name="-"), holders)


class ResponsiblePart(BaseModel):
    """One R person of an activity and every R role they hold on it (matrix column order)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    person: Person
    roles: tuple[Role, ...]

    @property
    def title(self) -> str:
        """Whose part this is, for a ticket title: "Service Level Manager (Sam Owner)"."""
        return f"{' and '.join(r.display_name for r in self.roles)} ({self.person.name})"


def responsible_parts(
    activity: Activity, holders_of: Mapping[Role, Sequence[Person]]
) -> tuple[ResponsiblePart, ...]:
    """The distinct R people of an activity, in matrix order (R roles, then each role's holders)."""
    roles_of: dict[str, list[Role]] = {}
    people: dict[str, Person] = {}
    for role in activity.roles_with(Letter.R):
        for person in holders_of.get(role, ()):
            people.setdefault(identity(person), person)
            roles_of.setdefault(identity(person), []).append(role)
    return tuple(
        ResponsiblePart(person=people[who], roles=tuple(roles)) for who, roles in roles_of.items()
    )
