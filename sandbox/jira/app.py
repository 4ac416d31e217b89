"""The Jira stand-in: Cloud (REST v3 + v2) or Data Center (REST v2) on loopback.

Flavours:

- ``cloud``: ``/rest/api/3/...`` with ADF rich text and users by ``accountId``; ``/rest/api/2/...``
  too (same data, wiki strings), as Cloud serves both. ``/rest/api/{2,3}/search`` answers
  410 Gone; search with ``/rest/api/3/search/jql`` (``nextPageToken``).
- ``datacenter``: ``/rest/api/2/...`` (and ``latest``) with wiki strings and users by ``name``;
  serverInfo says ``deploymentType: "Server"`` as Data Center does; ``/rest/api/2/search`` pages
  with ``startAt`` / ``total``; no v3 (404).

Seeded content: project SLM (Task, Sub-task, Epic; empty) and the JSM project ITSD holding
service requests derived from the estate's incidents (see ``sandbox/jira/jsm.py``); users are
the estate's people that are in Jira, plus the service account the sandbox authenticates as.
Field ids: see ``sandbox/jira/directory.py``. Other routes beyond ``/rest/api``:
``/rest/servicedeskapi/request/{issueIdOrKey}/sla`` and, on Cloud, the service registry
``/rest/atlassian-connect/1/service-registry`` (see ``sandbox/jira/jsm.py``).

Tests may call ``JiraApp.site.rename_subtask_type("Unteraufgabe")`` (a localized site) and
replace ``JiraApp.site.clock`` (monotonic seconds) to step over the search index lag.

Who acts: Basic auth with a directory person's e-mail (Data Center: also their user name) and
the password ``PERSON_PASSWORD`` (``sandbox.jira.directory``) acts as that person: their
comments, attachments and created issues name them, ``/myself`` is their profile. A person's
login with another password, or a deactivated person's, answers 401. Any other credentials
(API token, PAT, the demo account) act as the integration account ``BOT``.

Real Jira's unkindness (search lag on everything, JQL dates in the user's time zone, the
assignable-user check, the per-issue write limit, the text length limit, permissions) is set by
``JiraApp.realism`` (see ``sandbox/jira/realism.py``). Answers without a body (204, the 201 of
``issueLink``) carry no Content-Type, as Jira's do.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox.estate.model import Estate
from sandbox.http import json_response
from sandbox.http.knobs import Knobs
from sandbox.jira.directory import PERSON_PASSWORD, JiraUser
from sandbox.jira.issues import IssueWriter, jira_error, no_content, not_found
from sandbox.jira.limits import IssueWriteLimiter, per_issue_limited
from sandbox.jira.meta import MetaReader
from sandbox.jira.realism import JiraRealism
from sandbox.jira.render import Dialect, jira_time, status_by_id
from sandbox.jira.search import Reader
from sandbox.jira.site import BOT, JiraSite
from sandbox.jira.store import StoredIssue

__all__ = ["JiraApp"]


@dataclass(frozen=True)
class Acting:
    """A request's JSON dialect and the user it acts as."""

    dialect: Dialect
    actor: JiraUser


def _rules(versions: tuple[str, ...]) -> list[Rule]:
    """Literal version paths, so request counts read ``GET /rest/api/3/issue/<key>``."""
    rules = [rule for version in versions for rule in _api_rules(f"/rest/api/{version}", version)]
    return [
        *rules,
        Rule(
            "/rest/servicedeskapi/request/<key>/sla",
            endpoint="issue.request_sla",
            methods=["GET"],
            defaults={"version": "2"},
        ),
        Rule(
            "/rest/atlassian-connect/1/service-registry",
            endpoint="read.service_registry",
            methods=["GET"],
            defaults={"version": "3"},
        ),
    ]


def _api_rules(api: str, version: str) -> list[Rule]:
    get, post, put = ["GET"], ["POST"], ["PUT"]
    issue = f"{api}/issue/<key>"
    rules = [
        Rule(f"{api}/serverInfo", endpoint="meta.server_info", methods=get),
        Rule(f"{api}/myself", endpoint="meta.myself", methods=get),
        Rule(f"{api}/mypermissions", endpoint="meta.my_permissions", methods=get),
        Rule(f"{api}/field", endpoint="meta.fields", methods=get),
        Rule(f"{api}/project", endpoint="meta.projects", methods=get),
        Rule(f"{api}/project/<key>", endpoint="meta.project", methods=get),
        Rule(f"{api}/issuetype", endpoint="meta.issue_types", methods=get),
        Rule(f"{api}/issueLinkType", endpoint="meta.link_types", methods=get),
        Rule(f"{api}/issue/createmeta", endpoint="meta.createmeta", methods=get),
        Rule(
            f"{api}/issue/createmeta/<key>/issuetypes",
            endpoint="meta.createmeta_types",
            methods=get,
        ),
        Rule(
            f"{api}/issue/createmeta/<key>/issuetypes/<type_id>",
            endpoint="meta.createmeta_fields",
            methods=get,
        ),
        Rule(f"{api}/issue", endpoint="write.create", methods=post),
        Rule(f"{api}/issue/bulk", endpoint="write.bulk", methods=post),
        Rule(f"{api}/issueLink", endpoint="write.link_issues", methods=post),
        Rule(
            f"{api}/issueLink/<int:link_id>", endpoint="read.delete_issue_link", methods=["DELETE"]
        ),
        Rule(issue, endpoint="issue.get", methods=get),
        Rule(issue, endpoint="issue.edit", methods=put),
        Rule(issue, endpoint="issue.delete", methods=["DELETE"]),
        Rule(f"{issue}/assignee", endpoint="issue.assign", methods=put),
        Rule(f"{issue}/transitions", endpoint="issue.transitions", methods=get),
        Rule(f"{issue}/transitions", endpoint="issue.transition", methods=post),
        Rule(f"{issue}/comment", endpoint="issue.comments", methods=get),
        Rule(f"{issue}/comment", endpoint="issue.add_comment", methods=post),
        Rule(f"{issue}/watchers", endpoint="issue.watchers", methods=get),
        Rule(f"{issue}/watchers", endpoint="issue.add_watcher", methods=post),
        Rule(f"{issue}/watchers", endpoint="issue.remove_watcher", methods=["DELETE"]),
        Rule(f"{issue}/attachments", endpoint="issue.add_attachments", methods=post),
        Rule(f"{issue}/remotelink", endpoint="issue.remote_links", methods=get),
        Rule(f"{issue}/remotelink", endpoint="issue.add_remote_link", methods=post),
        Rule(
            f"{api}/attachment/content/<int:attachment_id>",
            endpoint="read.attachment_content",
            methods=get,
        ),
        Rule(
            f"{api}/attachment/<int:attachment_id>",
            endpoint="read.delete_attachment",
            methods=["DELETE"],
        ),
        Rule(f"{api}/search", endpoint="read.search", methods=["GET", "POST"]),
        Rule(f"{api}/search/jql", endpoint="read.search_jql", methods=["GET", "POST"]),
        Rule(f"{api}/user/search", endpoint="read.user_search", methods=get),
        Rule(f"{api}/user/bulk", endpoint="read.user_bulk", methods=get),
        Rule(f"{api}/users/search", endpoint="read.users_list", methods=get),
        Rule(f"{api}/user", endpoint="read.user", methods=get),
    ]
    for rule in rules:
        rule.defaults = {"version": version}
    return rules


class JiraApp:
    """The Jira stand-in as a harness ``StandIn``: routes, dispatch, introspection."""

    name = "jira"

    def __init__(
        self,
        estate: Estate,
        flavor: Literal["cloud", "datacenter"] = "cloud",
        knobs: Knobs | None = None,
        subtask_type_name: str = "Sub-task",
        realism: JiraRealism | None = None,
    ) -> None:
        if flavor not in ("cloud", "datacenter"):
            raise ValueError(f"jira flavor {flavor!r}: expected 'cloud' or 'datacenter'")
        self.flavor = flavor
        self.knobs = knobs or Knobs()
        self.realism = realism or JiraRealism()
        self.site = JiraSite(
            estate,
            flavor,
            lambda: self.knobs.index_lag_ms / 1000,
            subtask_type_name,
            self.realism,
        )
        self.write_limiter = IssueWriteLimiter(lambda: self.site.clock())
        self.url_map = Map(_rules(("2", "3", "latest") if flavor == "cloud" else ("2", "latest")))
        self._lock = threading.RLock()

    # ---- StandIn ---------------------------------------------------------------------------
    def dispatch(self, request: Request, endpoint: str, values: dict[str, Any]) -> Response:
        version = str(values.pop("version", "2"))
        if version == "latest":
            version = "2"
        actor = self._actor(request)
        if actor is None:
            return jira_error(401, ["Client must be authenticated to access this resource."])
        dialect = Dialect(self.site.cloud, version, request.host_url.rstrip("/"))
        with self._lock:
            return self._handle(request, Acting(dialect, actor), endpoint, values)

    def error(self, request: Request, error: HTTPException) -> Response:
        if error.code == 404:
            return self._not_found(request)
        return jira_error(error.code or 500, [error.description or error.name])

    def created(self) -> dict[str, Any]:
        """What clients created: tickets with their people, labels, text and attachments."""
        with self._lock:
            return {
                "flavor": self.flavor,
                "tickets": [self._ticket(issue) for issue in self.site.store.created()],
                "issue_links": [vars(link) for link in self.site.store.links],
            }

    def reset_state(self) -> None:
        with self._lock:
            self.site.reset()
            self.write_limiter.reset()

    # ---- routing ---------------------------------------------------------------------------
    def _handle(
        self, request: Request, acting: Acting, endpoint: str, values: dict[str, Any]
    ) -> Response:
        group, action = endpoint.split(".", 1)
        dialect = acting.dialect
        if group == "meta":
            reader = MetaReader(self.site, dialect, acting.actor)
            return getattr(reader, action)(request, **values)  # type: ignore[no-any-return]
        if group == "write":
            writer = IssueWriter(self.site, dialect, acting.actor)
            return getattr(writer, action)(request)  # type: ignore[no-any-return]
        if group == "read":
            return self._read(Reader(self.site, dialect), action, request, values)
        issue = self.site.store.find(values["key"])
        if issue is None:
            return not_found()
        if request.method != "GET" and self.site.cloud:
            wait = self.write_limiter.admit(issue.key, self.realism.issue_write_limits)
            if wait is not None:
                return per_issue_limited(issue.key, wait)
        return self._issue_action(acting, action, issue, request)

    def _read(
        self, reader: Reader, action: str, request: Request, values: dict[str, Any]
    ) -> Response:
        if action in ("search_jql", "service_registry") and not self.site.cloud:
            return self._not_found(request)
        if action == "attachment_content":
            return self._attachment_content(values["attachment_id"])
        if action == "delete_attachment":
            return self._delete_attachment(values["attachment_id"])
        if action == "delete_issue_link":
            return self._delete_issue_link(values["link_id"])
        handler: Callable[[Request], Response] = getattr(reader, action)
        return handler(request)

    def _issue_action(
        self, acting: Acting, action: str, issue: StoredIssue, request: Request
    ) -> Response:
        dialect = acting.dialect
        if action == "get":
            wanted = self.site.field_names(request.args.getlist("fields"), "*all")
            return _json(self.site.render_issue(issue, dialect, wanted))
        if action == "comments":
            return self._comments(issue, dialect, request)
        if action == "request_sla":
            return Reader(self.site, dialect).request_sla(issue, request)
        writer = IssueWriter(self.site, dialect, acting.actor)
        if action in {
            "edit",
            "assign",
            "transition",
            "add_comment",
            "add_watcher",
            "remove_watcher",
            "add_attachments",
            "add_remote_link",
            "delete",
        }:
            return getattr(writer, action)(issue, request)  # type: ignore[no-any-return]
        return getattr(writer, action)(issue)  # type: ignore[no-any-return]

    def _comments(self, issue: StoredIssue, dialect: Dialect, request: Request) -> Response:
        """GET issue/{key}/comment: `startAt` / `maxResults` (Cloud's default 100, Data Center's
        all), at most `comment_page_max` a page; `orderBy` created / -created."""
        try:
            start = max(int(request.args.get("startAt", 0)), 0)
            asked = request.args.get("maxResults")
            default = 100 if self.site.cloud else len(issue.comments)
            limit = int(asked) if asked is not None else default
        except ValueError:
            return jira_error(400, ["startAt and maxResults must be numbers."])
        order = request.args.get("orderBy", "created")
        if order not in ("created", "+created", "-created"):
            return jira_error(400, [f"Invalid orderBy value: {order}"])
        limit = min(max(limit, 0), self.realism.comment_page_max)
        page = self.site.comment_page(issue, dialect, start, limit, order == "-created")
        return _json(page)

    def _attachment_content(self, attachment_id: int) -> Response:
        for issue in self.site.store.issues.values():
            for attachment in issue.attachments:
                if attachment.id == attachment_id:
                    return Response(attachment.content, 200, content_type=attachment.mime_type)
        return jira_error(404, ["The attachment does not exist."])

    def _delete_attachment(self, attachment_id: int) -> Response:
        """DELETE /attachment/{id}: 204 without a body, as Jira answers."""
        for issue in self.site.store.issues.values():
            for attachment in issue.attachments:
                if attachment.id == attachment_id:
                    issue.attachments.remove(attachment)
                    return no_content()
        return jira_error(404, ["The attachment does not exist."])

    def _delete_issue_link(self, link_id: int) -> Response:
        """DELETE /issueLink/{id}: 204. Jira records the removal in both issues' history,
        which changes their `updated` (realism `link_changes_touch`; off: neither changes)."""
        store = self.site.store
        link = next((link for link in store.links if link.id == link_id), None)
        if link is None:
            return jira_error(404, [f"No issue link with id '{link_id}' exists."])
        store.links.remove(link)
        if self.realism.link_changes_touch:
            for key in (link.inward_key, link.outward_key):
                issue = store.find(key)
                if issue is not None:
                    store.touch(issue)
        return no_content()

    def _actor(self, request: Request) -> JiraUser | None:
        """Who the request acts as (see the module docstring); None: answer 401."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return BOT
        try:
            login, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if password == self.knobs.rejected_password:
            return None
        person = self.site.person_by_login(login)
        if person is None:
            return BOT
        return person if password == PERSON_PASSWORD and person.active else None

    def _not_found(self, request: Request) -> Response:
        return jira_error(404, [f"null for uri: {request.url}"])

    # ---- introspection ---------------------------------------------------------------------
    def _ticket(self, issue: StoredIssue) -> dict[str, Any]:
        fields = issue.fields
        return {
            "key": issue.key,
            "id": issue.id,
            "project": issue.project,
            "type": self.site.issue_types[issue.issuetype_id].name,
            "status": status_by_id(issue.status_id).name,
            "parent": issue.parent_key,
            "summary": fields.get("summary"),
            "labels": issue.labels,
            "assignee": self._person(fields.get("assignee")),
            "accountable": self._person(fields.get("customfield_10034")),
            "reporter": self._person(fields.get("reporter")),
            "due_date": fields.get("duedate"),
            "watchers": [self._person(a) for a in issue.watchers],
            "attachments": [{"filename": a.filename, "size": a.size} for a in issue.attachments],
            "comments": [c.body for c in issue.comments],
            "remote_links": [{"globalId": r.global_id, **r.object} for r in issue.remote_links],
            "description": fields.get("description"),
            "fields": {k: v for k, v in fields.items() if k.startswith("customfield_")},
            "created": jira_time(issue.created),
            "updated": jira_time(issue.updated),
        }

    def _person(self, account_id: str | None) -> dict[str, Any] | None:
        user = self.site.by_account.get(account_id or "")
        if user is None:
            return None
        identifier = user.account_id if self.site.cloud else user.name
        return {"id": identifier, "displayName": user.display_name, "email": user.email}


def _json(body: Any) -> Response:
    return json_response(body)
