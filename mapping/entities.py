"""What each mapped entity becomes: a review model, or a draft that `assemble` completes.

Services and components name people by reference (a ServiceNow sys_id, a Jira account id) and
components name their services; both are resolved only once every stream is mapped, so the mapping
produces drafts for them. A person-valued field accepts a reference id (`owned_by`) or an inline
object (`{id: owner_account_id, email: owner_email, name: owner_name}`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from review import Agreement, CsatResponse, Material, Person, SlaRecord, SourceRef


class PersonRef(BaseModel):
    """A person named by a record: an id to look up in the person stream, or inline details."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = None
    email: str | None = None
    name: str | None = None


def _person_ref(value: Any) -> Any:
    if isinstance(value, str):
        return PersonRef(id=value) if value else None
    if isinstance(value, dict) and not any(value.values()):
        return None
    return value


class ServiceDraft(BaseModel):
    """A service as mapped, before its people and components are attached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    name: str
    tier: int | None = None
    owner: PersonRef | None = None
    business_owner: PersonRef | None = None
    lt_sponsor: PersonRef | None = None
    source: SourceRef | None = None

    @field_validator("owner", "business_owner", "lt_sponsor", mode="before")
    @classmethod
    def _people(cls, value: Any) -> Any:
        return _person_ref(value)


class ComponentDraft(BaseModel):
    """A component (CI) as mapped: its owner by reference, the services it serves by key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    name: str
    ci_class: str | None = None
    owner: PersonRef | None = None
    depends_on: tuple[str, ...] = ()
    service_keys: tuple[str, ...] = ()
    source: SourceRef | None = None

    @field_validator("owner", mode="before")
    @classmethod
    def _people(cls, value: Any) -> Any:
        return _person_ref(value)


# entity name -> the model a mapped record is validated into.
ENTITY_MODELS: dict[str, type[BaseModel]] = {
    "service": ServiceDraft,
    "component": ComponentDraft,
    "person": Person,
    "agreement": Agreement,
    "sla_record": SlaRecord,
    "csat_response": CsatResponse,
    "material": Material,
}
ENTITIES = tuple(ENTITY_MODELS)


def entity_fields(entity: str) -> tuple[str, ...]:
    """The fields a mapping may set for `entity` (`source` is filled from the entity's id)."""
    return tuple(name for name in ENTITY_MODELS[entity].model_fields if name != "source")


def required_fields(entity: str) -> tuple[str, ...]:
    """Fields of `entity` without a model default: a mapping must give each a source."""
    model = ENTITY_MODELS[entity]
    return tuple(
        name for name, info in model.model_fields.items() if info.is_required() and name != "source"
    )
