"""The RACI matrix of the SLM process: who is Responsible, Accountable, Consulted, Informed.

The matrix is data (`config/raci.yaml`, the seed's table by default) that admins may edit; this
module validates it and answers who does what. It is pure: the caller reads the file and passes
the parsed mapping, and `RaciError.path` says where in that mapping a rule was broken so the
caller can name the file line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict


class Role(StrEnum):
    """The roles of the seed's RACI table (its columns), in table order."""

    SLM_PROCESS_OWNER = "slm_process_owner"
    SERVICE_CATALOG_OWNER = "service_catalog_owner"
    LT = "lt"
    SERVICE_LEVEL_MANAGER = "service_level_manager"
    CI_OWNER = "ci_owner"

    @property
    def display_name(self) -> str:
        """The role's name as the seed writes it."""
        return _ROLE_TITLES[self]


_ROLE_TITLES = {
    Role.SLM_PROCESS_OWNER: "SLM Process Owner",
    Role.SERVICE_CATALOG_OWNER: "Service Catalog Owner",
    Role.LT: "LT",
    Role.SERVICE_LEVEL_MANAGER: "Service Level Manager",
    Role.CI_OWNER: "Configuration Item Owner",
}


class Scope(StrEnum):
    """Where an activity's ticket lives: once per cycle, or once per reviewed service."""

    CYCLE = "cycle"
    SERVICE = "service"


class Letter(StrEnum):
    """A RACI letter."""

    R = "R"
    A = "A"
    C = "C"
    I = "I"  # noqa: E741 - the letter is the domain's name


class RaciError(ValueError):
    """A RACI matrix that breaks a rule; `path` locates the offending entry in the file."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


_ROLES = tuple(Role)  # the matrix's column order (iterating the enum itself is slow)


@lru_cache(maxsize=1024)
def _roles_with(
    raci: tuple[tuple[Role, frozenset[Letter]], ...], letter: Letter
) -> tuple[Role, ...]:
    held = dict(raci)
    return tuple(role for role in _ROLES if letter in held.get(role, ()))


class Activity(BaseModel):
    """One row of the matrix: an SLM activity and each role's letters."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    scope: Scope
    due_offset_days: int | None = None
    raci: tuple[tuple[Role, frozenset[Letter]], ...]

    def letters(self, role: Role) -> frozenset[Letter]:
        """The letters `role` holds on this activity (empty if none)."""
        return dict(self.raci).get(role, frozenset())

    def roles_with(self, letter: Letter) -> tuple[Role, ...]:
        """Roles holding `letter`, in the matrix's column order (worked out once per letter:
        plans ask this thousands of times a cycle, and the activity never changes)."""
        return _roles_with(self.raci, letter)

    @property
    def accountable(self) -> Role:
        """The single accountable role (validation guarantees exactly one)."""
        return self.roles_with(Letter.A)[0]


class RaciMatrix(BaseModel):
    """The validated matrix: activities in process order."""

    model_config = ConfigDict(frozen=True)

    activities: tuple[Activity, ...]

    def activity(self, activity_id: str) -> Activity:
        """The activity with this id; KeyError if there is none."""
        for activity in self.activities:
            if activity.id == activity_id:
                return activity
        raise KeyError(activity_id)

    def in_scope(self, scope: Scope) -> tuple[Activity, ...]:
        """Activities of one scope, in process order."""
        return tuple(a for a in self.activities if a.scope is scope)

    @classmethod
    def from_data(cls, data: Any) -> RaciMatrix:
        """Validate parsed YAML (`{"activities": [...]}`) into a matrix, or raise RaciError."""
        if not isinstance(data, Mapping) or not isinstance(data.get("activities"), Sequence):
            raise RaciError("the file must hold a mapping with an 'activities' list", ())
        unknown = set(data) - {"activities"}
        if unknown:
            raise RaciError(f"unknown top-level key {sorted(unknown)[0]!r}", (sorted(unknown)[0],))
        activities = [_parse_activity(i, row) for i, row in enumerate(data["activities"])]
        if not activities:
            raise RaciError("'activities' is empty: the matrix needs at least one", ("activities",))
        seen: dict[str, int] = {}
        for i, activity in enumerate(activities):
            if activity.id in seen:
                raise RaciError(
                    f"activity {activity.name!r}: id {activity.id!r} is already used by "
                    f"activity #{seen[activity.id] + 1}; ids must be unique",
                    ("activities", i, "id"),
                )
            seen[activity.id] = i
        return cls(activities=tuple(activities))


_ACTIVITY_KEYS = {"id", "name", "scope", "due_offset_days", "raci"}


def _parse_activity(index: int, row: Any) -> Activity:
    path: tuple[str | int, ...] = ("activities", index)
    if not isinstance(row, Mapping):
        raise RaciError(f"activity #{index + 1} must be a mapping", path)
    name = row.get("name")
    label = repr(name) if isinstance(name, str) and name else f"#{index + 1}"
    for key in ("id", "name", "scope", "raci"):
        if key not in row:
            raise RaciError(f"activity {label}: missing required key {key!r}", path)
    unknown = set(row) - _ACTIVITY_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise RaciError(
            f"activity {label}: unknown key {key!r} (allowed: {', '.join(sorted(_ACTIVITY_KEYS))})",
            (*path, key),
        )
    if not isinstance(row["id"], str) or not row["id"].strip():
        raise RaciError(f"activity {label}: 'id' must be a non-empty string", (*path, "id"))
    scopes = ", ".join(s.value for s in Scope)
    if row["scope"] not in {s.value for s in Scope}:
        raise RaciError(
            f"activity {label}: scope {row['scope']!r} is not one of {scopes}", (*path, "scope")
        )
    offset = row.get("due_offset_days")
    if offset is not None and (not isinstance(offset, int) or isinstance(offset, bool)):
        raise RaciError(
            f"activity {label}: due_offset_days must be a whole number of days",
            (*path, "due_offset_days"),
        )
    raci = _parse_cells(label, row["raci"], (*path, "raci"))
    return Activity(
        id=row["id"],
        name=str(name),
        scope=Scope(row["scope"]),
        due_offset_days=offset,
        raci=raci,
    )


def _parse_cells(
    label: str, cells: Any, path: tuple[str | int, ...]
) -> tuple[tuple[Role, frozenset[Letter]], ...]:
    if not isinstance(cells, Mapping):
        raise RaciError(f"activity {label}: 'raci' must map roles to letters", path)
    parsed: list[tuple[Role, frozenset[Letter]]] = []
    known_roles = ", ".join(r.value for r in Role)
    for role_id, value in cells.items():
        if role_id not in {r.value for r in Role}:
            raise RaciError(
                f"activity {label}: unknown role {role_id!r} (known roles: {known_roles})",
                (*path, str(role_id)),
            )
        parsed.append((Role(role_id), _parse_letters(label, role_id, value, (*path, role_id))))
    merged = {role: letters for role, letters in parsed if letters}
    accountable = [r for r, letters in merged.items() if Letter.A in letters]
    if len(accountable) != 1:
        found = ", ".join(r.value for r in accountable) or "none"
        raise RaciError(
            f"activity {label}: needs exactly one A (accountable) role, found {found}", path
        )
    if not any(Letter.R in letters for letters in merged.values()):
        raise RaciError(f"activity {label}: needs at least one R (responsible) role", path)
    return tuple((role, merged[role]) for role in Role if role in merged)


def _parse_letters(
    label: str, role_id: str, value: Any, path: tuple[str | int, ...]
) -> frozenset[Letter]:
    if value is None or value == "" or value == "-":
        return frozenset()
    if not isinstance(value, str):
        raise RaciError(
            f"activity {label}: role {role_id!r} has {value!r}; write letters such as R, A/R, A/C",
            path,
        )
    parts = [p.strip().upper() for p in value.split("/")]
    allowed = {letter.value for letter in Letter}
    bad = [p for p in parts if p not in allowed]
    if bad or len(set(parts)) != len(parts):
        raise RaciError(
            f"activity {label}: role {role_id!r} has {value!r}; "
            "use R, A, C, I or combinations such as A/R, A/C (each letter once)",
            path,
        )
    return frozenset(Letter(p) for p in parts)
