"""One Jira site: its configuration, users and issues, seeded from the estate; renders issues.

:class:`JiraSite` is what every handler works on. It holds no HTTP: the routes live in
``sandbox/jira/app.py`` and the handlers in ``sandbox/jira/issues.py`` / ``sandbox/jira/search.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sandbox.estate.model import Estate
from sandbox.jira.directory import (
    FIELD_AFFECTED_SERVICES,
    FIELD_SATISFACTION,
    FIELD_TIME_TO_FIRST_RESPONSE,
    FIELD_TIME_TO_RESOLUTION,
    FieldDef,
    IssueTypeDef,
    JiraUser,
    ProjectDef,
    field_defs,
    issue_types,
    projects,
)
from sandbox.jira.fields import RequestContext
from sandbox.jira.jql import JqlCatalog
from sandbox.jira.jsm import service_id, service_requests
from sandbox.jira.realism import JiraRealism
from sandbox.jira.render import Dialect, jira_time, status_by_id
from sandbox.jira.store import JiraStore, StoredIssue

__all__ = ["BOT", "JiraSite"]

BOT = JiraUser(
    account_id="712020:5e3b2c1a-9f4d-4c6b-8a7e-0d1f2a3b4c5d",
    name="slm-sync",
    key="JIRAUSER10000",
    display_name="SLM Sync (service account)",
    email="slm-sync@example.com",
)
ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"
_NAVIGABLE_EXCLUDED = frozenset({"comment", "attachment"})


class JiraSite:
    """Configuration, users and issues of one Jira site (Cloud or Data Center)."""

    def __init__(
        self,
        estate: Estate,
        flavor: str,
        index_lag: Callable[[], float],
        subtask_name: str = "Sub-task",
        realism: JiraRealism | None = None,
    ) -> None:
        self.realism = realism or JiraRealism()
        self.estate = estate
        self.flavor = flavor
        self.cloud = flavor == "cloud"
        self.subtask_name = subtask_name
        self.clock: Callable[[], float] = time.monotonic
        self.index_lag = index_lag
        self.users = [BOT, *_users(estate)]
        self.by_account = {u.account_id: u for u in self.users}
        self.by_name = {u.name.lower(): u for u in self.users}
        self.account_of = {p.sys_id: p.jira_account_id for p in estate.people if p.in_jira}
        self.fields: dict[str, FieldDef] = {f.id: f for f in field_defs(flavor)}
        self.projects: dict[str, ProjectDef] = {p.key: p for p in projects()}
        self.services = {service_id(s): s for s in estate.services}
        self._computed = self._computed_fields()
        self.reset()

    # ---- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the seeded state: SLM empty, ITSD holding the estate's requests."""
        self.issue_types: dict[str, IssueTypeDef] = {
            t.id: t for t in issue_types(self.subtask_name)
        }
        self.store = JiraStore(
            lambda: self.clock(), self.index_lag, lambda: self.realism.lag_everything
        )
        for request in service_requests(self.estate, self.account_of):
            self.store.add(
                "ITSD",
                "10003",
                request.status_id,
                dict(request.fields),
                at=request.created,
                updated=request.updated,
                seeded=True,
            )
        self.store.project_counters.setdefault("SLM", 0)

    def rename_subtask_type(self, name: str) -> None:
        """Localize the sub-task issue type (e.g. "Unteraufgabe"), as a German site shows it."""
        self.subtask_name = name
        self.issue_types["10002"] = issue_types(name)[2]

    # ---- lookups -------------------------------------------------------------------------
    def project(self, id_or_key: str) -> ProjectDef | None:
        for project in self.projects.values():
            if id_or_key in {project.id, project.key} or id_or_key.upper() == project.key:
                return project
        return None

    def project_types(self, project: ProjectDef) -> list[IssueTypeDef]:
        return [self.issue_types[type_id] for type_id in project.issuetype_ids]

    def context(self, dialect: Dialect) -> RequestContext:
        def key_for(id_or_key: str) -> str | None:
            issue = self.store.find(id_or_key)
            return issue.key if issue else None

        return RequestContext(
            self.cloud,
            dialect.version == "3",
            self.fields,
            self.issue_types,
            self.projects,
            self.by_account,
            self.by_name,
            frozenset(self.services),
            key_for,
            self.realism.assignable_check,
            self.realism.text_limit,
        )

    def catalog(self) -> JqlCatalog:
        names = {t.name: t.id for t in self.issue_types.values()}
        return JqlCatalog(
            frozenset(self.projects),
            names,
            lambda key: self.store.resolve(key) in self.store.issues,
            zone=self.realism.zone,
            resolve=self.store.resolve,
        )

    def person_by_login(self, login: str) -> JiraUser | None:
        """The person (not the integration account) who logs in as `login`: their e-mail, or
        on Data Center their user name."""
        wanted = login.strip().lower()
        for user in self.users[1:]:
            if user.email.lower() == wanted or (not self.cloud and user.name.lower() == wanted):
                return user
        return None

    def user_for_identifier(self, identifier: str) -> JiraUser | None:
        """A user by this flavour's identifier: accountId on Cloud, name (or key) on DC."""
        if self.cloud:
            return self.by_account.get(identifier)
        return self.by_name.get(identifier.lower()) or next(
            (u for u in self.users if u.key == identifier), None
        )

    # ---- rendering -----------------------------------------------------------------------
    def render_issue(
        self, issue: StoredIssue, dialect: Dialect, wanted: Iterable[str] | None
    ) -> dict[str, Any]:
        """The issue JSON; ``wanted`` is the resolved field list (None: all fields)."""
        names = self.fields if wanted is None else [n for n in wanted if n in self.fields]
        return {
            "expand": ISSUE_EXPAND,
            "id": str(issue.id),
            "self": f"{dialect.api}/issue/{issue.id}",
            "key": issue.key,
            "fields": {name: self._field_value(issue, name, dialect) for name in names},
        }

    def field_names(self, spec: list[str], default: str) -> list[str] | None:
        """Resolve a ``fields`` parameter (``*all``, ``*navigable``, ids, ``-id``); None = all."""
        tokens = [t.strip() for item in (spec or [default]) for t in item.split(",") if t.strip()]
        names: list[str] = []
        for token in tokens:
            if token == "*all":
                names.extend(self.fields)
            elif token == "*navigable":
                names.extend(f for f in self.fields if f not in _NAVIGABLE_EXCLUDED)
            elif not token.startswith("-"):
                names.append(self.clause_to_id(token))
        excluded = {self.clause_to_id(t[1:]) for t in tokens if t.startswith("-")}
        return [n for n in dict.fromkeys(names) if n not in excluded]

    def clause_to_id(self, name: str) -> str:
        for definition in self.fields.values():
            if name in definition.clause_names or name.lower() == definition.name.lower():
                return definition.id
        return name

    def _field_value(self, issue: StoredIssue, name: str, dialect: Dialect) -> Any:
        """One field as the API shows it; computed fields only when asked for (search speed)."""
        computed = self._computed.get(name)
        if computed is not None:
            return computed(issue, dialect)
        return dialect.stored_value(name, issue.fields.get(name), self.by_account)

    def _computed_fields(self) -> dict[str, Callable[[StoredIssue, Dialect], Any]]:
        return {
            "labels": lambda i, d: i.labels,
            "project": lambda i, d: d.project_ref(self.projects[i.project]),
            "issuetype": lambda i, d: d.issue_type(self.issue_types[i.issuetype_id]),
            "status": lambda i, d: d.status(status_by_id(i.status_id)),
            "created": lambda i, d: jira_time(i.created),
            "updated": lambda i, d: jira_time(i.updated),
            "resolution": lambda i, d: _resolution(i),
            "resolutiondate": lambda i, d: _resolution_date(i),
            "parent": self._parent,
            "subtasks": self._subtasks,
            "issuelinks": self._links,
            "watches": _watches,
            "comment": self.embedded_comments,
            "attachment": lambda i, d: [
                d.attachment(a, self.by_account.get(a.author, BOT)) for a in i.attachments
            ],
            FIELD_AFFECTED_SERVICES: lambda i, d: self._services(
                i.fields.get(FIELD_AFFECTED_SERVICES)
            ),
            FIELD_TIME_TO_RESOLUTION: lambda i, d: self.sla_field(i, FIELD_TIME_TO_RESOLUTION, d),
            FIELD_TIME_TO_FIRST_RESPONSE: lambda i, d: self.sla_field(
                i, FIELD_TIME_TO_FIRST_RESPONSE, d
            ),
            FIELD_SATISFACTION: lambda i, d: i.fields.get(FIELD_SATISFACTION),
        }

    def _subtasks(self, issue: StoredIssue, dialect: Dialect) -> list[dict[str, Any]]:
        return [
            self._ref(child, dialect)
            for child in self.store.issues.values()
            if child.parent_key == issue.key and self.issue_types[child.issuetype_id].subtask
        ]

    def embedded_comments(self, issue: StoredIssue, dialect: Dialect) -> dict[str, Any]:
        """The `comment` field of an issue or a search hit: the oldest comments up to the
        `embedded_comments` knob, with `total` telling how many there are."""
        return self.comment_page(issue, dialect, 0, self.realism.embedded_comments)

    def comment_page(
        self,
        issue: StoredIssue,
        dialect: Dialect,
        start: int = 0,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> dict[str, Any]:
        """A page of comments, oldest first (GET issue/{key}/comment, the `comment` field)."""
        ordered = sorted(issue.comments, key=lambda c: (c.created, c.id), reverse=newest_first)
        size = len(ordered) if limit is None else max(limit, 0)
        page = ordered[start : start + size]
        return {
            "comments": [
                dialect.comment(issue, c, self.by_account.get(c.author, BOT)) for c in page
            ],
            "maxResults": size,
            "total": len(ordered),
            "startAt": start,
        }

    def sla_field(
        self, issue: StoredIssue, field_id: str, dialect: Dialect
    ) -> dict[str, Any] | None:
        value = issue.fields.get(field_id)
        if value is None:
            return None
        body = {
            **value,
            "_links": {
                "self": f"{dialect.base}/rest/servicedeskapi/request/{issue.id}/sla/{value['id']}"
            },
        }
        if self.cloud:
            body["slaDisplayFormat"] = "NEW_SLA_FORMAT"
        return body

    def _services(self, ids: list[str] | None) -> list[dict[str, Any]] | None:
        if ids is None:
            return None
        name_key = "name" if self.cloud else "value"
        return [{"id": i, name_key: self.services[i].name} for i in ids if i in self.services]

    def _ref(self, issue: StoredIssue, dialect: Dialect) -> dict[str, Any]:
        triple = (
            str(issue.fields.get("summary", "")),
            status_by_id(issue.status_id),
            self.issue_types[issue.issuetype_id],
        )
        return dialect.issue_ref(issue, triple)

    def _parent(self, issue: StoredIssue, dialect: Dialect) -> dict[str, Any] | None:
        parent = self.store.issues.get(issue.parent_key or "")
        return self._ref(parent, dialect) if parent else None

    def _links(self, issue: StoredIssue, dialect: Dialect) -> list[dict[str, Any]]:
        rendered = []
        for link in self.store.links:
            if issue.key not in {link.inward_key, link.outward_key}:
                continue
            other_key = link.outward_key if link.inward_key == issue.key else link.inward_key
            rendered.append(
                dialect.issue_link(
                    link, issue.key, self._ref(self.store.issues[other_key], dialect)
                )
            )
        return rendered

    def now(self) -> datetime:
        return datetime.now(UTC)


def _resolution(issue: StoredIssue) -> dict[str, Any] | None:
    if status_by_id(issue.status_id).category_key != "done":
        return None
    return {"id": "10000", "name": "Done", "description": "Work has been completed."}


def _resolution_date(issue: StoredIssue) -> str | None:
    """When the issue entered its done status (seeded ones: their last update)."""
    if status_by_id(issue.status_id).category_key != "done":
        return None
    return jira_time(issue.resolved or issue.updated)


def _watches(issue: StoredIssue, dialect: Dialect) -> dict[str, Any]:
    return {
        "self": f"{dialect.api}/issue/{issue.key}/watchers",
        "watchCount": len(issue.watchers),
        "isWatching": BOT.account_id in issue.watchers,
    }


def _users(estate: Estate) -> list[JiraUser]:
    people = [p for p in estate.people if p.in_jira]
    return [
        JiraUser(
            p.jira_account_id,
            p.jira_name,
            f"JIRAUSER{10100 + index}",
            p.name,
            p.email,
            p.jira_email_hidden,
            p.active,
            assignable=p.jira_assignable,
        )
        for index, p in enumerate(people)
    ]
