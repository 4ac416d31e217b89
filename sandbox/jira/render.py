"""JSON shapes of the Jira stand-in, per flavour and API version.

A :class:`Dialect` is fixed per request: Cloud names users by ``accountId`` and omits hidden
emails, Data Center by ``name`` / ``key``; REST v3 writes rich text as ADF, v2 as wiki strings.
Timestamps use Jira's format (``2024-01-01T10:00:00.000+0000``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sandbox.jira.adf import adf_to_wiki, text_to_adf
from sandbox.jira.directory import (
    LINK_TYPES,
    STATUSES,
    TEXT_FIELDS,
    FieldDef,
    IssueTypeDef,
    JiraUser,
    ProjectDef,
    StatusDef,
)
from sandbox.jira.fields import PRIORITIES, USER_FIELDS
from sandbox.jira.store import Attachment, Comment, IssueLink, RemoteLink, StoredIssue

__all__ = ["Dialect", "jira_time"]


def jira_time(moment: datetime) -> str:
    """``2024-01-01T10:00:00.000+0000``: milliseconds, offset without a colon."""
    return (
        moment.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}"
        + moment.strftime("%z")
    )


def _avatars(seed: str) -> dict[str, str]:
    base = f"https://avatar-management.sandbox.invalid/initials/{quote(seed[:2])}.png"
    return {f"{n}x{n}": f"{base}?size={n}" for n in (48, 24, 16, 32)}


@dataclass(frozen=True)
class Dialect:
    cloud: bool
    version: str  # "2" or "3"
    base: str  # http://127.0.0.1:PORT

    @property
    def api(self) -> str:
        return f"{self.base}/rest/api/{self.version}"

    # ---- users -------------------------------------------------------------------------
    def user(self, user: JiraUser, *, full: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = (
            {"self": f"{self.api}/user?accountId={user.account_id}", "accountId": user.account_id}
            if self.cloud
            else {
                "self": f"{self.api}/user?username={quote(user.name)}",
                "name": user.name,
                "key": user.key,
            }
        )
        if not (self.cloud and user.email_hidden):
            body["emailAddress"] = user.email
        body.update(
            avatarUrls=_avatars(user.display_name),
            displayName=user.display_name,
            active=user.active,
        )
        if full:
            body["timeZone"] = user.time_zone
        if self.cloud:
            body["accountType"] = "atlassian"
        return body

    # ---- site configuration ------------------------------------------------------------
    def field(self, definition: FieldDef) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": definition.id,
            "key": definition.id,
            "name": definition.name,
            "custom": definition.custom,
            "orderable": definition.settable,
            "navigable": True,
            "searchable": True,
            "clauseNames": list(definition.clause_names),
            "schema": definition.schema,
        }
        return body

    def issue_type(self, issue_type: IssueTypeDef) -> dict[str, Any]:
        return {
            "self": f"{self.api}/issuetype/{issue_type.id}",
            "id": issue_type.id,
            "description": issue_type.description,
            "iconUrl": f"{self.base}/images/icons/issuetypes/{issue_type.id}.svg",
            "name": issue_type.name,
            "subtask": issue_type.subtask,
            "hierarchyLevel": issue_type.hierarchy_level,
        }

    def status(self, status: StatusDef) -> dict[str, Any]:
        return {
            "self": f"{self.api}/status/{status.id}",
            "description": "",
            "iconUrl": f"{self.base}/images/icons/status_generic.gif",
            "name": status.name,
            "id": status.id,
            "statusCategory": {
                "self": f"{self.api}/statuscategory/{status.category_id}",
                "id": status.category_id,
                "key": status.category_key,
                "colorName": status.color,
                "name": status.category_name,
            },
        }

    def project_ref(self, project: ProjectDef) -> dict[str, Any]:
        return {
            "self": f"{self.api}/project/{project.id}",
            "id": project.id,
            "key": project.key,
            "name": project.name,
            "projectTypeKey": project.type_key,
            "simplified": False,
            "avatarUrls": _avatars(project.key),
        }

    def project(
        self, project: ProjectDef, types: list[IssueTypeDef], lead: JiraUser
    ) -> dict[str, Any]:
        return {
            **self.project_ref(project),
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            "description": f"{project.name} (sandbox)",
            "lead": self.user(lead, full=False),
            "issueTypes": [self.issue_type(t) for t in types],
            "assigneeType": "UNASSIGNED",
            "components": [],
            "versions": [],
            "style": "classic",
            "isPrivate": False,
            "properties": {},
        }

    def link_type(self, link_type: tuple[str, str, str, str]) -> dict[str, Any]:
        type_id, name, inward, outward = link_type
        return {
            "id": type_id,
            "name": name,
            "inward": inward,
            "outward": outward,
            "self": f"{self.api}/issueLinkType/{type_id}",
        }

    # ---- issue parts -------------------------------------------------------------------
    def text(self, value: Any) -> Any:
        """Stored text as this API version shows it."""
        if value is None:
            return None
        if self.version == "3":
            return value if isinstance(value, dict) else text_to_adf(str(value))
        return adf_to_wiki(value) if isinstance(value, dict) else value

    def comment(self, issue: StoredIssue, comment: Comment, author: JiraUser) -> dict[str, Any]:
        user = self.user(author, full=False)
        body: dict[str, Any] = {
            "self": f"{self.api}/issue/{issue.id}/comment/{comment.id}",
            "id": str(comment.id),
            "author": user,
            "body": self.text(comment.body),
            "updateAuthor": user,
            "created": jira_time(comment.created),
            "updated": jira_time(comment.created),
        }
        if self.cloud:
            body["jsdPublic"] = True
        return body

    def attachment(self, attachment: Attachment, author: JiraUser) -> dict[str, Any]:
        return {
            "self": f"{self.api}/attachment/{attachment.id}",
            "id": str(attachment.id),
            "filename": attachment.filename,
            "author": self.user(author, full=False),
            "created": jira_time(attachment.created),
            "size": attachment.size,
            "mimeType": attachment.mime_type,
            "content": f"{self.api}/attachment/content/{attachment.id}",
        }

    def remote_link(self, issue: StoredIssue, link: RemoteLink) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": link.id,
            "self": f"{self.api}/issue/{issue.key}/remotelink/{link.id}",
            "object": link.object,
        }
        if link.global_id is not None:
            body["globalId"] = link.global_id
        if link.application is not None:
            body["application"] = link.application
        if link.relationship is not None:
            body["relationship"] = link.relationship
        return body

    def issue_ref(
        self, issue: StoredIssue, summary_status: tuple[str, StatusDef, IssueTypeDef]
    ) -> dict[str, Any]:
        summary, status, issue_type = summary_status
        return {
            "id": str(issue.id),
            "key": issue.key,
            "self": f"{self.api}/issue/{issue.id}",
            "fields": {
                "summary": summary,
                "status": self.status(status),
                "issuetype": self.issue_type(issue_type),
            },
        }

    def issue_link(self, link: IssueLink, this_key: str, other: dict[str, Any]) -> dict[str, Any]:
        link_type = next(t for t in LINK_TYPES if t[0] == link.type_id)
        direction = "outwardIssue" if link.inward_key == this_key else "inwardIssue"
        return {
            "id": str(link.id),
            "self": f"{self.api}/issueLink/{link.id}",
            "type": self.link_type(link_type),
            direction: other,
        }

    def stored_value(self, name: str, value: Any, users: dict[str, JiraUser]) -> Any:
        """A stored settable field value as the API shows it."""
        if name in TEXT_FIELDS:
            return self.text(value)
        if name in USER_FIELDS:
            user = users.get(value) if value else None
            return self.user(user, full=False) if user else None
        if name == "priority" and value:
            return {
                "self": f"{self.api}/priority/{value}",
                "id": value,
                "name": PRIORITIES[value],
                "iconUrl": f"{self.base}/images/icons/priorities/{PRIORITIES[value].lower()}.svg",
            }
        return value


def status_by_id(status_id: str) -> StatusDef:
    return next(s for s in STATUSES if s.id == status_id)
