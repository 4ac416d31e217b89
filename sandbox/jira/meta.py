"""Site metadata reads of the Jira stand-in: serverInfo, myself, fields, projects, issue types,
create metadata (old ``createmeta?expand=projects.issuetypes.fields`` and the paged
``createmeta/{project}/issuetypes[/{id}]``) and issue link types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.http import json_response
from sandbox.jira.directory import (
    LINK_TYPES,
    TEXT_FIELDS,
    FieldDef,
    IssueTypeDef,
    JiraUser,
    ProjectDef,
)
from sandbox.jira.issues import jira_error
from sandbox.jira.render import Dialect, jira_time
from sandbox.jira.site import BOT, JiraSite

__all__ = ["MetaReader"]

# Cloud reports a rolling "1001.0.0-SNAPSHOT"; Data Center reports deploymentType "Server".
SERVER_INFO = {
    "cloud": {
        "version": "1001.0.0-SNAPSHOT",
        "versionNumbers": [1001, 0, 0],
        "deploymentType": "Cloud",
        "buildNumber": 100283,
        "scmInfo": "b0c3b5c0a3ef9d4e",
    },
    "datacenter": {
        "version": "9.12.15",
        "versionNumbers": [9, 12, 15],
        "deploymentType": "Server",
        "buildNumber": 9120015,
        "scmInfo": "a2f4e8d6c1b3579e",
    },
}
BUILD_DATE = datetime(2025, 11, 3, tzinfo=UTC)
# What the create screens offer, besides summary / issuetype / project.
CREATE_SCREEN = (
    "description",
    "labels",
    "assignee",
    "reporter",
    "duedate",
    "priority",
    "parent",
    "customfield_10033",
    "customfield_10034",
    "customfield_10035",
)

# Project permissions by key: (id, name, description), as Jira's permission scheme names them.
PROJECT_PERMISSIONS = {
    "BROWSE_PROJECTS": ("10", "Browse Projects", "Ability to browse projects."),
    "CREATE_ISSUES": ("11", "Create Issues", "Ability to create issues."),
    "EDIT_ISSUES": ("12", "Edit Issues", "Ability to edit issues."),
    "ASSIGN_ISSUES": ("13", "Assign Issues", "Ability to assign issues to other people."),
    "ASSIGNABLE_USER": ("17", "Assignable User", "Users with this permission may be assigned."),
    "ADD_COMMENTS": ("15", "Add Comments", "Ability to comment on issues."),
    "CREATE_ATTACHMENTS": ("19", "Create Attachments", "Users may attach files."),
    "MANAGE_WATCHERS": ("32", "Manage Watchers", "Ability to manage the watchers of an issue."),
    "TRANSITION_ISSUES": ("46", "Transition Issues", "Ability to transition issues."),
    "LINK_ISSUES": ("21", "Link Issues", "Ability to link issues together."),
    "CLOSE_ISSUES": ("18", "Close Issues", "Ability to close issues."),
    "RESOLVE_ISSUES": ("14", "Resolve Issues", "Ability to resolve and reopen issues."),
}


class MetaReader:
    def __init__(self, site: JiraSite, dialect: Dialect, actor: JiraUser = BOT) -> None:
        self.site = site
        self.dialect = dialect
        self.actor = actor

    def server_info(self, request: Request) -> Response:
        info = SERVER_INFO[self.site.flavor]
        return json_response(
            {
                "baseUrl": self.dialect.base,
                **info,
                "buildDate": jira_time(BUILD_DATE),
                "serverTime": jira_time(datetime.now(UTC)),
                "serverTitle": "Jira (sandbox)",
            }
        )

    def myself(self, request: Request) -> Response:
        body = self.dialect.user(self.actor)
        zone = self.site.realism.time_zone if self.actor is BOT else self.actor.time_zone
        body.update(
            locale="en_US",
            timeZone=zone,
            groups={"size": 1, "items": []},
            applicationRoles={"size": 1, "items": []},
        )
        return json_response(body)

    def my_permissions(self, request: Request) -> Response:
        """GET mypermissions: Cloud requires `permissions`; Data Center lists all without it."""
        keys = [k for v in request.args.getlist("permissions") for k in v.split(",") if k]
        if not keys and self.site.cloud:
            return jira_error(400, ["The 'permissions' query parameter is required."])
        unknown = [k for k in keys if k not in PROJECT_PERMISSIONS]
        if unknown:
            return jira_error(400, [f"Unrecognized permission keys: {', '.join(unknown)}"])
        project_key = request.args.get("projectKey")
        if project_key and self.site.project(project_key) is None:
            return jira_error(404, [f"No project could be found with key '{project_key}'."])
        denied = self.site.realism.denied_permissions
        return json_response(
            {
                "permissions": {
                    key: {
                        "id": PROJECT_PERMISSIONS[key][0],
                        "key": key,
                        "name": PROJECT_PERMISSIONS[key][1],
                        "type": "PROJECT",
                        "description": PROJECT_PERMISSIONS[key][2],
                        "havePermission": key not in denied,
                    }
                    for key in keys or PROJECT_PERMISSIONS
                }
            }
        )

    def fields(self, request: Request) -> Response:
        return json_response([self.dialect.field(f) for f in self.site.fields.values()])

    def projects(self, request: Request) -> Response:
        return json_response([self._project(p) for p in self.site.projects.values()])

    def project(self, request: Request, key: str) -> Response:
        project = self.site.project(key)
        if project is None:
            return jira_error(404, [f"No project could be found with key '{key}'."])
        return json_response(self._project(project))

    def _project(self, project: ProjectDef) -> dict[str, Any]:
        return self.dialect.project(project, self.site.project_types(project), BOT)

    def issue_types(self, request: Request) -> Response:
        return json_response([self.dialect.issue_type(t) for t in self.site.issue_types.values()])

    def link_types(self, request: Request) -> Response:
        return json_response({"issueLinkTypes": [self.dialect.link_type(t) for t in LINK_TYPES]})

    # ---- create metadata -------------------------------------------------------------------
    def createmeta(self, request: Request) -> Response:
        keys = {k.upper() for v in request.args.getlist("projectKeys") for k in v.split(",") if k}
        ids = {i for v in request.args.getlist("projectIds") for i in v.split(",") if i}
        type_names = {n for v in request.args.getlist("issuetypeNames") for n in v.split(",") if n}
        type_ids = {i for v in request.args.getlist("issuetypeIds") for i in v.split(",") if i}
        with_fields = "projects.issuetypes.fields" in request.args.get("expand", "")
        chosen = [
            p
            for p in self.site.projects.values()
            if (not keys and not ids) or p.key in keys or p.id in ids
        ]
        body = []
        for project in chosen:
            types = [
                t
                for t in self.site.project_types(project)
                if (not type_names and not type_ids) or t.name in type_names or t.id in type_ids
            ]
            rendered_types = []
            for issue_type in types:
                entry = {**self.dialect.issue_type(issue_type), "expand": "fields"}
                if with_fields:
                    # The old form keys fields by id and leaves "fieldId" out of each entry.
                    entry["fields"] = {
                        f.pop("fieldId"): f for f in self._create_fields(project, issue_type)
                    }
                rendered_types.append(entry)
            ref = self.dialect.project_ref(project)
            body.append(
                {
                    "self": ref["self"],
                    "id": project.id,
                    "key": project.key,
                    "name": project.name,
                    "avatarUrls": ref["avatarUrls"],
                    "issuetypes": rendered_types,
                    "expand": "issuetypes",
                }
            )
        return json_response({"expand": "projects", "projects": body})

    def createmeta_types(self, request: Request, key: str) -> Response:
        project = self.site.project(key)
        if project is None:
            return jira_error(400, [f"No project could be found with key '{key}'."])
        types = [self.dialect.issue_type(t) for t in self.site.project_types(project)]
        return json_response(self._page(request, types, "issueTypes"))

    def createmeta_fields(self, request: Request, key: str, type_id: str) -> Response:
        project = self.site.project(key)
        issue_type = self.site.issue_types.get(type_id)
        if project is None or issue_type is None or type_id not in project.issuetype_ids:
            return jira_error(
                400, [f"The issue type with id '{type_id}' does not exist in this project."]
            )
        return json_response(
            self._page(request, self._create_fields(project, issue_type), "fields")
        )

    def _page(
        self, request: Request, items: list[dict[str, Any]], cloud_key: str
    ) -> dict[str, Any]:
        start = int(request.args.get("startAt", 0))
        size = int(request.args.get("maxResults", 50))
        page = items[start : start + size]
        # Cloud names the list after its content; Data Center pages as "values" with isLast.
        if self.site.cloud:
            return {cloud_key: page, "maxResults": size, "startAt": start, "total": len(items)}
        return {
            "values": page,
            "maxResults": size,
            "startAt": start,
            "total": len(items),
            "isLast": start + size >= len(items),
        }

    def _create_fields(self, project: ProjectDef, issue_type: IssueTypeDef) -> list[dict[str, Any]]:
        names = ["summary", "issuetype", "project", *CREATE_SCREEN]
        if project.key != "SLM":
            names = [n for n in names if n not in {"customfield_10034", "customfield_10035"}]
        return [self._create_field(self.site.fields[n], project, issue_type) for n in names]

    def _create_field(
        self, definition: FieldDef, project: ProjectDef, issue_type: IssueTypeDef
    ) -> dict[str, Any]:
        required = definition.id in {"summary", "issuetype", "project"} or (
            definition.id == "parent" and issue_type.subtask
        )
        operations = ["add", "set", "remove"] if definition.id == "labels" else ["set"]
        body: dict[str, Any] = {
            "required": required,
            "schema": definition.schema,
            "name": definition.name,
            "key": definition.id,
            "fieldId": definition.id,
            "hasDefaultValue": False,
            "operations": operations,
        }
        if definition.id == "issuetype":
            body["allowedValues"] = [self.dialect.issue_type(issue_type)]
        elif definition.id == "project":
            body["allowedValues"] = [self.dialect.project_ref(project)]
        elif definition.id in {"assignee", "reporter", "customfield_10034"}:
            body["autoCompleteUrl"] = (
                f"{self.dialect.api}/user/search?{'query' if self.site.cloud else 'username'}="
            )
        elif definition.id in TEXT_FIELDS and self.dialect.version == "3":
            body["schema"] = {**definition.schema}
        return body
