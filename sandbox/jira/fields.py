"""Reading issue field values from create / edit requests, with Jira's validation messages.

One :class:`FieldReader` per request: it knows the flavour (users by accountId on Cloud, by
name on Data Center) and the API version (ADF on v3, wiki strings on v2). Errors are collected
per field, as Jira reports them: ``{"errorMessages": [], "errors": {"<field>": "<message>"}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.jira.adf import adf_error
from sandbox.jira.directory import (
    FIELD_ACCOUNTABLE,
    FIELD_AFFECTED_SERVICES,
    TEXT_FIELDS,
    FieldDef,
    IssueTypeDef,
    JiraUser,
    ProjectDef,
)
from sandbox.jira.realism import TEXT_TOO_LONG

__all__ = ["FieldErrors", "FieldReader", "RequestContext", "cannot_set", "label_error"]

USER_FIELDS = frozenset({"assignee", "reporter", FIELD_ACCOUNTABLE})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PRIORITIES = {"1": "Highest", "2": "High", "3": "Medium", "4": "Low", "5": "Lowest"}


@dataclass
class FieldErrors(Exception):
    """A request Jira refuses with 400; ``errors`` by field, ``messages`` for the rest."""

    errors: dict[str, str] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"errorMessages": self.messages, "errors": self.errors}

    def __bool__(self) -> bool:
        return bool(self.errors or self.messages)


@dataclass(frozen=True)
class RequestContext:
    """What reading a request needs to know about the site and the API version used."""

    cloud: bool
    adf: bool  # REST v3
    fields: dict[str, FieldDef]
    issue_types: dict[str, IssueTypeDef]
    projects: dict[str, ProjectDef]
    user_by_account: dict[str, JiraUser]
    user_by_name: dict[str, JiraUser]
    service_ids: frozenset[str]
    issue_key_for: Callable[[str], str | None]  # id or key -> key of an existing issue
    check_assignable: bool = True  # refuse assignees without the Assignable user permission
    text_limit: int = 32767  # characters of a text field or comment (ADF: its compact JSON)


class FieldReader:
    """Turns a request's ``fields`` into stored values, collecting Jira's errors."""

    def __init__(self, context: RequestContext) -> None:
        self.context = context
        self.problems = FieldErrors()

    def read(self, fields: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, raw in fields.items():
            if name in {"project", "issuetype"}:
                continue
            definition = self.context.fields.get(name)
            if definition is None or not definition.settable:
                self.problems.errors[name] = cannot_set(name)
                continue
            value = self.value(name, raw)
            if name not in self.problems.errors:
                values[name] = value
        return values

    def value(self, name: str, raw: Any) -> Any:
        if name in TEXT_FIELDS:
            return self.text(name, raw)
        if name in USER_FIELDS:
            return self.user(name, raw)
        readers: dict[str, Callable[[str, Any], Any]] = {
            "summary": self.summary,
            "labels": self.labels,
            "duedate": self.duedate,
            "priority": self.priority,
            "parent": self.parent,
            FIELD_AFFECTED_SERVICES: self.services,
        }
        reader = readers.get(name)
        if reader is None:
            self.problems.errors[name] = cannot_set(name)
            return None
        return reader(name, raw)

    def summary(self, name: str, raw: Any) -> Any:
        if not isinstance(raw, str) or not raw.strip():
            self.problems.errors[name] = "You must specify a summary of the issue."
        elif len(raw) > 255:
            self.problems.errors[name] = "Summary must be less than 255 characters."
        elif "\n" in raw:
            self.problems.errors[name] = (
                "The summary is invalid because it contains newline characters."
            )
        return raw

    def text(self, name: str, raw: Any) -> Any:
        if raw is None:
            return None
        if self.context.adf:
            problem = adf_error(raw)
            if problem:
                self.problems.errors[name] = problem
        elif not isinstance(raw, str):
            self.problems.errors[name] = "Operation value must be a string"
        if name not in self.problems.errors and _length(raw) > self.context.text_limit:
            self.problems.errors[name] = TEXT_TOO_LONG.format(limit=self.context.text_limit)
        return raw

    def labels(self, name: str, raw: Any) -> Any:
        if not isinstance(raw, list) or not all(isinstance(label, str) for label in raw):
            self.problems.errors[name] = "Operation value must be an array of strings"
            return []
        for label in raw:
            problem = label_error(label)
            if problem:
                self.problems.errors[name] = problem
        return list(dict.fromkeys(raw))

    def user(self, name: str, raw: Any) -> str | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.problems.errors[name] = f"Operation value must be an object with '{self.user_key}'"
            return None
        user = self.find_user(raw)
        if user is None:
            self.problems.errors[name] = self.no_such_user(raw)
            return None
        if name == "assignee" and self.context.check_assignable and not user.assignable:
            identifier = user.account_id if self.context.cloud else user.name
            self.problems.errors[name] = f"User '{identifier}' cannot be assigned issues."
            return None
        return user.account_id

    @property
    def user_key(self) -> str:
        return "accountId" if self.context.cloud else "name"

    def find_user(self, raw: dict[str, Any]) -> JiraUser | None:
        if self.context.cloud:
            # Cloud dropped user names (GDPR): only accountId identifies a user.
            return self.context.user_by_account.get(str(raw.get("accountId")))
        name = raw.get("name") or raw.get("key")
        return self.context.user_by_name.get(str(name).lower()) if name else None

    def no_such_user(self, raw: dict[str, Any]) -> str:
        if self.context.cloud:
            if "accountId" not in raw:
                return "Specify the user by 'accountId'; 'name' and 'key' are not supported."
            return (
                "Specified user does not exist or you do not have required permissions: "
                f"{raw['accountId']}"
            )
        return f"User '{raw.get('name') or raw.get('key')}' does not exist."

    def duedate(self, name: str, raw: Any) -> Any:
        if raw is not None and (not isinstance(raw, str) or not _DATE.match(raw)):
            self.problems.errors[name] = f"Error parsing date string: {raw}"
        return raw

    def priority(self, name: str, raw: Any) -> Any:
        wanted = raw.get("id") or raw.get("name") if isinstance(raw, dict) else None
        for priority_id, priority_name in PRIORITIES.items():
            if wanted in {priority_id, priority_name}:
                return priority_id
        self.problems.errors[name] = (
            f"Specify the Priority (id or name) in the system format: {raw!r}"
        )
        return None

    def parent(self, name: str, raw: Any) -> Any:
        wanted = raw.get("key") or raw.get("id") if isinstance(raw, dict) else None
        key = self.context.issue_key_for(str(wanted)) if wanted else None
        if key is None:
            self.problems.errors[name] = "Could not find issue by id or key."
        return key

    def services(self, name: str, raw: Any) -> Any:
        if not isinstance(raw, list):
            self.problems.errors[name] = "Operation value must be an array of services"
            return []
        ids = [str(item.get("id")) if isinstance(item, dict) else str(item) for item in raw]
        unknown = [service_id for service_id in ids if service_id not in self.context.service_ids]
        if unknown:
            self.problems.errors[name] = f"Services not found: {', '.join(unknown)}"
        return ids


def _length(raw: Any) -> int:
    """Characters Jira counts: a wiki string as is, an ADF document as its compact JSON."""
    if isinstance(raw, str):
        return len(raw)
    return len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False))


def cannot_set(name: str) -> str:
    return f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."


def label_error(label: str) -> str | None:
    """Jira's message for a label it refuses, or None."""
    if not label:
        return "The label must not be empty."
    if any(character.isspace() for character in label):
        return f"The label '{label}' contains spaces which is invalid."
    if len(label) > 255:
        return "The label must not exceed 255 characters."
    return None
