"""Issue writes of the Jira stand-in: create (single and bulk), edit, transitions, comments,
watchers, attachments, remote links and issue links, with Jira's validation and status codes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.http import json_response
from sandbox.jira.adf import media_attachment_ids
from sandbox.jira.directory import LINK_TYPES, STATUSES, JiraUser
from sandbox.jira.fields import FieldErrors, FieldReader, cannot_set, label_error
from sandbox.jira.render import Dialect, status_by_id
from sandbox.jira.site import BOT, JiraSite
from sandbox.jira.store import Attachment, Comment, IssueLink, RemoteLink, StoredIssue

__all__ = ["BULK_LIMIT", "IssueWriter", "jira_error", "no_content", "not_found"]

BULK_LIMIT = 50
# Transition ids of the simplified workflow: any status can move to any other.
TRANSITIONS = {"11": "10000", "21": "3", "31": "10001"}


def jira_error(status: int, messages: list[str], errors: dict[str, str] | None = None) -> Response:
    return json_response({"errorMessages": messages, "errors": errors or {}}, status)


def no_content(status: int = 204) -> Response:
    """An answer without a body, and so without a Content-Type, as Jira sends 204s."""
    response = Response(status=status)
    del response.headers["Content-Type"]
    return response


def not_found() -> Response:
    return jira_error(404, ["Issue does not exist or you do not have permission to see it."])


def _body(request: Request) -> Any:
    try:
        return json.loads(request.get_data() or b"null")
    except ValueError:
        return None


class IssueWriter:
    """The write handlers, for one site, one request dialect and the user acting (the
    integration account unless a person authenticated as themselves: see app.py)."""

    def __init__(self, site: JiraSite, dialect: Dialect, actor: JiraUser = BOT) -> None:
        self.site = site
        self.dialect = dialect
        self.actor = actor

    # ---- create --------------------------------------------------------------------------
    def create(self, request: Request) -> Response:
        body = _body(request)
        try:
            issue = self.create_one(body)
        except FieldErrors as problems:
            return json_response(problems.body(), 400)
        return json_response(self.created_ref(issue), 201)

    def bulk(self, request: Request) -> Response:
        body = _body(request)
        updates = body.get("issueUpdates") if isinstance(body, dict) else None
        if not isinstance(updates, list):
            return jira_error(400, ["Request body must contain 'issueUpdates'."])
        if len(updates) > BULK_LIMIT:
            message = (
                f"Bulk create is limited to {BULK_LIMIT} issues; the request had {len(updates)}."
            )
            return json_response(
                {
                    "issues": [],
                    "errors": [
                        {"status": 400, "elementErrors": {"errorMessages": [message], "errors": {}}}
                    ],
                },
                400,
            )
        issues, errors = [], []
        for position, element in enumerate(updates):
            try:
                issues.append(self.created_ref(self.create_one(element)))
            except FieldErrors as problems:
                errors.append(
                    {
                        "status": 400,
                        "failedElementNumber": position,
                        "elementErrors": problems.body(),
                    }
                )
        return json_response({"issues": issues, "errors": errors}, 201 if issues else 400)

    def created_ref(self, issue: StoredIssue) -> dict[str, Any]:
        return {
            "id": str(issue.id),
            "key": issue.key,
            "self": f"{self.dialect.api}/issue/{issue.id}",
        }

    def create_one(self, body: Any) -> StoredIssue:
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            raise FieldErrors(messages=["Issue fields must be given in 'fields'."])
        reader = FieldReader(self.site.context(self.dialect))
        project = self._project(fields.get("project"), reader.problems)
        type_id = self._issuetype(fields.get("issuetype"), project, reader.problems)
        values = reader.read(fields)
        if "summary" not in fields:
            reader.problems.errors["summary"] = "You must specify a summary of the issue."
        self._apply_updates(values, body.get("update") or {}, reader)
        self._check_media(values, fields, None, reader.problems)
        if project and type_id:
            self._check_hierarchy(project, type_id, values.get("parent"), reader.problems)
        if reader.problems:
            raise reader.problems
        assert project is not None and type_id is not None
        values.setdefault("reporter", self.actor.account_id)
        return self.site.store.add(project, type_id, "10000", values)

    def _check_media(
        self,
        values: dict[str, Any],
        sent: dict[str, Any],
        issue: StoredIssue | None,
        problems: FieldErrors,
    ) -> None:
        """A description sent now may show only attachments of this issue (knob
        `media_attachments`); one created with the issue has none yet."""
        if not self.site.realism.media_attachments or "description" not in sent:
            return
        if self.dialect.version != "3" or "description" in problems.errors:
            return
        present = {a.id for a in issue.attachments} if issue is not None else set()
        missing = [i for i in media_attachment_ids(values.get("description")) if i not in present]
        if missing:
            where = f"issue {issue.key}" if issue is not None else "the new issue"
            problems.errors["description"] = (
                f"Media in the description refers to attachment {missing[0]}, "
                f"which is not attached to {where}."
            )

    def _project(self, raw: Any, problems: FieldErrors) -> str | None:
        wanted = (raw.get("id") or raw.get("key")) if isinstance(raw, dict) else raw
        project = self.site.project(str(wanted)) if wanted else None
        if project is None:
            problems.errors["project"] = "Specify a valid project ID or key"
            return None
        return project.key

    def _issuetype(self, raw: Any, project: str | None, problems: FieldErrors) -> str | None:
        wanted = (raw.get("id") or raw.get("name")) if isinstance(raw, dict) else None
        types = self.site.issue_types
        type_id = next((t.id for t in types.values() if wanted in {t.id, t.name}), None)
        if wanted is None:
            problems.errors["issuetype"] = "Specify an issue type"
        elif type_id is None or (
            project and type_id not in self.site.projects[project].issuetype_ids
        ):
            problems.errors["issuetype"] = "The issue type selected is invalid."
            return None
        return type_id

    def _check_hierarchy(
        self, project: str, type_id: str, parent_key: str | None, problems: FieldErrors
    ) -> None:
        subtask = self.site.issue_types[type_id].subtask
        parent = self.site.store.issues.get(parent_key) if parent_key else None
        if subtask and parent is None and "parent" not in problems.errors:
            problems.messages.append(
                "Issue type is a sub-task but parent issue key or id not specified."
            )
        if parent is None:
            return
        parent_type = self.site.issue_types[parent.issuetype_id]
        if subtask and parent.project != project:
            problems.errors["project"] = (
                "Sub-tasks must be created in the same project as the parent."
            )
        elif parent_type.hierarchy_level != self.site.issue_types[type_id].hierarchy_level + 1:
            problems.errors["parent"] = (
                "Given parent work item does not belong to appropriate hierarchy."
            )

    # ---- edit ----------------------------------------------------------------------------
    def edit(self, issue: StoredIssue, request: Request) -> Response:
        return self.apply_edit(issue, _body(request) or {})

    def assign(self, issue: StoredIssue, request: Request) -> Response:
        """PUT /issue/{key}/assignee: the body is the user object itself."""
        return self.apply_edit(issue, {"fields": {"assignee": _body(request)}})

    def apply_edit(self, issue: StoredIssue, body: dict[str, Any]) -> Response:
        reader = FieldReader(self.site.context(self.dialect))
        fields = body.get("fields") or {}
        for locked in ("project", "issuetype"):
            if locked in fields:
                reader.problems.errors[locked] = cannot_set(locked)
        values = {**issue.fields, **reader.read(fields)}
        self._apply_updates(values, body.get("update") or {}, reader, issue)
        self._check_media(values, fields, issue, reader.problems)
        if reader.problems:
            return json_response(reader.problems.body(), 400)
        issue.fields = values
        self.site.store.touch(issue)
        return no_content()

    def _apply_updates(
        self,
        values: dict[str, Any],
        update: dict[str, Any],
        reader: FieldReader,
        issue: StoredIssue | None = None,
    ) -> None:
        for name, operations in update.items():
            for operation in operations if isinstance(operations, list) else [operations]:
                for verb, operand in (operation or {}).items():
                    self._apply(values, name, verb, operand, reader, issue)

    def _apply(
        self,
        values: dict[str, Any],
        name: str,
        verb: str,
        operand: Any,
        reader: FieldReader,
        issue: StoredIssue | None,
    ) -> None:
        if name == "comment" and verb == "add" and issue is not None:
            self._add_comment(issue, operand, reader.problems)
        elif name == "labels" and verb in {"add", "remove"}:
            labels = list(values.get("labels") or [])
            problem = label_error(str(operand)) if verb == "add" else None
            if problem:
                reader.problems.errors["labels"] = problem
            elif verb == "add" and operand not in labels:
                labels.append(str(operand))
            elif verb == "remove" and operand in labels:
                labels.remove(operand)
            values["labels"] = labels
        elif verb == "set":
            values.update(reader.read({name: operand}))
        else:
            reader.problems.errors[name] = (
                f"Field '{name}' does not support the '{verb}' operation."
            )

    # ---- transitions ---------------------------------------------------------------------
    def transitions(self, issue: StoredIssue) -> Response:
        listed = [
            self._transition(tid, sid) for tid, sid in TRANSITIONS.items() if sid != issue.status_id
        ]
        return json_response({"expand": "transitions", "transitions": listed})

    def _transition(self, transition_id: str, status_id: str) -> dict[str, Any]:
        status = next(s for s in STATUSES if s.id == status_id)
        return {
            "id": transition_id,
            "name": status.name,
            "to": self.dialect.status(status),
            "hasScreen": False,
            "isGlobal": True,
            "isInitial": False,
            "isAvailable": True,
            "isConditional": False,
            "isLooped": False,
        }

    def transition(self, issue: StoredIssue, request: Request) -> Response:
        body = _body(request) or {}
        transition_id = str((body.get("transition") or {}).get("id", ""))
        target = TRANSITIONS.get(transition_id)
        if target is None or target == issue.status_id:
            return jira_error(
                400, [f"Transition id '{transition_id}' is not valid for this issue."]
            )
        reader = FieldReader(self.site.context(self.dialect))
        values = {**issue.fields, **reader.read(body.get("fields") or {})}
        self._apply_updates(values, body.get("update") or {}, reader, issue)
        if reader.problems:
            return json_response(reader.problems.body(), 400)
        issue.fields = values
        self._move(issue, target)
        self.site.store.touch(issue)
        return no_content()

    @staticmethod
    def _move(issue: StoredIssue, status_id: str) -> None:
        """Into a done status Jira stamps the resolution date; out of one it clears it."""
        done = status_by_id(status_id).category_key == "done"
        was_done = status_by_id(issue.status_id).category_key == "done"
        if done and not was_done:
            issue.resolved = datetime.now(UTC)
        elif not done:
            issue.resolved = None
        issue.status_id = status_id

    # ---- comments ------------------------------------------------------------------------
    def add_comment(self, issue: StoredIssue, request: Request) -> Response:
        body = _body(request) or {}
        problems = FieldErrors()
        comment = self._add_comment(issue, body, problems)
        if comment is None:
            return json_response(problems.body(), 400)
        return json_response(self.dialect.comment(issue, comment, self.actor), 201)

    def _add_comment(self, issue: StoredIssue, body: Any, problems: FieldErrors) -> Comment | None:
        text = body.get("body") if isinstance(body, dict) else None
        reader = FieldReader(self.site.context(self.dialect))
        reader.text("comment", text)
        if text is None or text == "" or reader.problems:
            problems.errors["comment"] = reader.problems.errors.get(
                "comment", "Comment body can not be empty!"
            )
            return None
        comment = Comment(
            self.site.store.next_child_id(),
            self.actor.account_id,
            text,
            datetime.now(UTC),
            list(body.get("properties") or []),
        )
        issue.comments.append(comment)
        self.site.store.touch(issue)
        return comment

    # ---- watchers ------------------------------------------------------------------------
    def watchers(self, issue: StoredIssue) -> Response:
        users = [self.dialect.user(self.site.by_account[a], full=False) for a in issue.watchers]
        return json_response(
            {
                "self": f"{self.dialect.api}/issue/{issue.key}/watchers",
                "isWatching": BOT.account_id in issue.watchers,
                "watchCount": len(users),
                "watchers": users,
            }
        )

    def add_watcher(self, issue: StoredIssue, request: Request) -> Response:
        """The body is one JSON string: an accountId (Cloud) or a user name (Data Center);
        no body adds the caller. Anything else (an object, a number, bare text) is a 400."""
        raw = request.get_data()
        identifier = _body(request)
        if raw.strip() and not isinstance(identifier, str):
            wanted = "account ID" if self.site.cloud else "user name"
            return jira_error(
                400, [f"The request body must be the {wanted} of the user as a JSON string."]
            )
        user = self.actor if identifier is None else self.site.user_for_identifier(identifier)
        if user is None:
            return jira_error(404, [f'The user "{identifier}" does not exist.'])
        if user.account_id not in issue.watchers:
            issue.watchers.append(user.account_id)
            self.site.store.reindex(issue)
        return no_content()

    def remove_watcher(self, issue: StoredIssue, request: Request) -> Response:
        """DELETE .../watchers?accountId= (Cloud) or ?username= (Data Center): 204."""
        param = "accountId" if self.site.cloud else "username"
        identifier = request.args.get(param, "")
        if not identifier:
            return jira_error(400, [f"The {param} query parameter is required."])
        user = self.site.user_for_identifier(identifier)
        if user is None:
            return jira_error(404, [f'The user "{identifier}" does not exist.'])
        if user.account_id in issue.watchers:
            issue.watchers.remove(user.account_id)
            self.site.store.reindex(issue)
        return no_content()

    # ---- attachments ---------------------------------------------------------------------
    def add_attachments(self, issue: StoredIssue, request: Request) -> Response:
        if request.headers.get("X-Atlassian-Token", "").lower() != "no-check":
            return Response("XSRF check failed", 403, content_type="text/plain")
        files = request.files.getlist("file")
        if not files:
            return jira_error(
                400, ["No file was provided in the 'file' part of the multipart request."]
            )
        added = []
        for upload in files:
            content = upload.read()
            attachment = Attachment(
                self.site.store.next_child_id(),
                upload.filename or "file",
                len(content),
                upload.mimetype or "application/octet-stream",
                self.actor.account_id,
                datetime.now(UTC),
                content,
            )
            issue.attachments.append(attachment)
            added.append(self.dialect.attachment(attachment, self.actor))
        self.site.store.touch(issue)
        return json_response(added)

    # ---- remote links and issue links ----------------------------------------------------
    def remote_links(self, issue: StoredIssue) -> Response:
        return json_response([self.dialect.remote_link(issue, link) for link in issue.remote_links])

    def add_remote_link(self, issue: StoredIssue, request: Request) -> Response:
        body = _body(request) or {}
        raw_target = body.get("object")
        target: dict[str, Any] = raw_target if isinstance(raw_target, dict) else {}
        missing = {k: f"'{k}' is required." for k in ("url", "title") if not target.get(k)}
        if missing:
            return jira_error(400, [], missing)
        global_id = body.get("globalId")
        existing = next(
            (r for r in issue.remote_links if global_id and r.global_id == global_id), None
        )
        if existing is not None:  # same globalId: Jira updates the link in place
            existing.object, existing.relationship = target, body.get("relationship")
            link, status = existing, 200
        else:
            link = RemoteLink(
                self.site.store.next_child_id(),
                global_id,
                body.get("relationship"),
                body.get("application"),
                target,
            )
            issue.remote_links.append(link)
            status = 201
        self.site.store.touch(issue)
        return json_response(
            {"id": link.id, "self": f"{self.dialect.api}/issue/{issue.key}/remotelink/{link.id}"},
            status,
        )

    def delete(self, issue: StoredIssue, request: Request) -> Response:
        """DELETE issue/{key}: 204; refused with 400 while it has sub-tasks, unless
        `deleteSubtasks=true` (then they go too), as Jira answers."""
        children = [i for i in self.site.store.issues.values() if i.parent_key == issue.key]
        if children and request.args.get("deleteSubtasks", "false").lower() != "true":
            return jira_error(
                400, ["The issue has subtasks. Set deleteSubtasks to true to delete them too."]
            )
        for doomed in (*children, issue):
            self.site.store.remove(doomed)
        return no_content()

    def link_issues(self, request: Request) -> Response:
        body = _body(request) or {}
        wanted = body.get("type") or {}
        link_type = next(
            (t for t in LINK_TYPES if wanted.get("id") == t[0] or wanted.get("name") == t[1]), None
        )
        if link_type is None:
            return jira_error(404, [f"No issue link type with name '{wanted.get('name')}' found."])
        ends = []
        for side in ("inwardIssue", "outwardIssue"):
            ref = body.get(side) or {}
            issue = self.site.store.find(str(ref.get("key") or ref.get("id") or ""))
            if issue is None:
                return jira_error(404, [f"Issue Does Not Exist: {ref}"])
            ends.append(issue)
        self.site.store.links.append(
            IssueLink(self.site.store.next_child_id(), link_type[0], ends[0].key, ends[1].key)
        )
        for issue in ends if self.site.realism.link_changes_touch else ():
            self.site.store.touch(issue)
        if body.get("comment"):
            self._add_comment(ends[1], body["comment"], FieldErrors())
        return no_content(201)
