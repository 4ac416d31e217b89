"""Reads of the Jira stand-in that page: JQL search (Cloud keyset tokens, DC offsets), user
search by email, the JSM SLA resource and the service registry.

- Cloud ``/rest/api/3/search/jql`` (GET and POST): ``nextPageToken`` paging, no ``startAt`` or
  ``total``; the token is absent on the last page; default ``fields`` is ``id`` only.
  ``reconcileIssues`` reads the listed issue ids through the index lag.
- Cloud ``/rest/api/{2,3}/search``: 410 Gone with the message Cloud gives since 2025.
- Data Center ``/rest/api/2/search``: ``startAt`` / ``maxResults`` / ``total``; default fields
  ``*navigable``.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.http import json_response, short_page
from sandbox.jira.issues import jira_error
from sandbox.jira.jql import JqlError, parse_jql
from sandbox.jira.jsm import REGISTRY_MAX_IDS, registry_entries
from sandbox.jira.render import Dialect
from sandbox.jira.site import JiraSite
from sandbox.jira.store import StoredIssue

__all__ = ["SEARCH_GONE", "Reader"]

SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
CLOUD_MAX_RESULTS = 5000  # ids / keys only
CLOUD_MAX_WITH_FIELDS = 100
DC_MAX_RESULTS = 1000


def _params(request: Request) -> dict[str, Any]:
    """GET query parameters or the POST JSON body, as one dict (lists for repeated ``fields``)."""
    if request.method == "POST":
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            body = None
        return body if isinstance(body, dict) else {}
    params: dict[str, Any] = {key: request.args.get(key) for key in request.args}
    params["fields"] = request.args.getlist("fields") or None
    params["reconcileIssues"] = request.args.getlist("reconcileIssues")
    return params


# Jira Cloud's page sizes for users: user/bulk (undocumented maximum; the spec's example answers
# 100) and users/search ("limited to 1000").
USER_BULK_MAX = 100
USERS_LIST_MAX = 1000


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _fields_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


class Reader:
    """Search and listing handlers for one site and one request dialect."""

    def __init__(self, site: JiraSite, dialect: Dialect) -> None:
        self.site = site
        self.dialect = dialect

    def _matching(self, jql: str, fresh: frozenset[int] = frozenset()) -> list[StoredIssue]:
        query = parse_jql(jql, self.site.catalog())
        seen = {d.id: (d, i) for d, i in self.site.store.search_view(fresh) if query.matches(d)}
        docs = [doc for doc, _ in seen.values()]
        order = (
            query.sort(docs) if query.order else sorted(docs, key=lambda d: d.created, reverse=True)
        )
        return [seen[d.id][1] for d in order]

    # ---- Cloud: search/jql -----------------------------------------------------------------
    def search_jql(self, request: Request) -> Response:
        params = _params(request)
        jql = str(params.get("jql") or "")
        if not jql.strip():
            return jira_error(
                400,
                [
                    "Unbounded JQL queries are not allowed here. "
                    "Please add a search restriction to your query."
                ],
            )
        fields = self.site.field_names(_fields_list(params.get("fields")), "id")
        limit = CLOUD_MAX_WITH_FIELDS if set(fields or []) - {"id", "key"} else CLOUD_MAX_RESULTS
        size = min(max(_int(params.get("maxResults"), 50), 1), limit)
        try:
            offset = self._token_offset(params.get("nextPageToken"), jql)
            fresh = frozenset(_int(i, -1) for i in _fields_list(params.get("reconcileIssues")))
            issues = self._matching(jql, fresh)
        except JqlError as error:
            return jira_error(400, [str(error)])
        page = issues[offset : offset + size]
        if short_page(request) and len(page) > 1:
            page = page[: len(page) // 2]
        body: dict[str, Any] = {"issues": [self._search_issue(i, fields) for i in page]}
        following = offset + len(page)
        if following < len(issues):
            body["nextPageToken"] = self._token(following, jql)
        body["isLast"] = following >= len(issues)
        return json_response(body)

    def _search_issue(self, issue: StoredIssue, fields: list[str] | None) -> dict[str, Any]:
        if fields == ["id"]:
            return {"id": str(issue.id)}
        return self.site.render_issue(
            issue, self.dialect, [f for f in (fields or []) if f not in {"id", "key"}]
        )

    @staticmethod
    def _token(offset: int, jql: str) -> str:
        raw = json.dumps({"o": offset, "q": zlib.crc32(jql.encode())}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _token_offset(token: Any, jql: str) -> int:
        if not token:
            return 0
        try:
            data = json.loads(base64.urlsafe_b64decode(str(token) + "=" * (-len(str(token)) % 4)))
            if data["q"] != zlib.crc32(jql.encode()):
                raise ValueError("token of another query")
            return int(data["o"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise JqlError("The provided next page token is invalid or expired.") from None

    # ---- old search: gone on Cloud, the paging API on Data Center -----------------------
    def search(self, request: Request) -> Response:
        if self.site.cloud:
            return jira_error(410, [SEARCH_GONE])
        params = _params(request)
        start = max(_int(params.get("startAt"), 0), 0)
        size = min(max(_int(params.get("maxResults"), 50), 0), DC_MAX_RESULTS)
        fields = self.site.field_names(_fields_list(params.get("fields")), "*navigable")
        try:
            issues = self._matching(str(params.get("jql") or ""))
        except JqlError as error:
            return jira_error(400, [str(error)])
        page = issues[start : start + size]
        if short_page(request) and len(page) > 1:
            page = page[: len(page) // 2]
        rendered = [self.site.render_issue(i, self.dialect, fields) for i in page]
        return json_response(
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": size,
                "total": len(issues),
                "issues": rendered,
            }
        )

    # ---- users -----------------------------------------------------------------------------
    def user_search(self, request: Request) -> Response:
        term = request.args.get("query") if self.site.cloud else request.args.get("username")
        account = request.args.get("accountId") if self.site.cloud else None
        if not term and not account:
            wanted = "query" if self.site.cloud else "username"
            return jira_error(400, [f"The '{wanted}' query parameter is required."])
        found = [u for u in self.site.users if u.active and self._user_matches(u, term, account)]
        start = _int(request.args.get("startAt"), 0)
        size = _int(request.args.get("maxResults"), 50)
        return json_response([self.dialect.user(u) for u in found[start : start + size]])

    def user_bulk(self, request: Request) -> Response:
        """Cloud's `GET user/bulk?accountId=a&accountId=b`: the users named, paged by `startAt`
        / `maxResults` (default 10, at most USER_BULK_MAX; the spec gives no maximum), inactive
        ones too (`active: false`); unknown ids are left out without an error. Data Center has
        no such resource (404)."""
        if not self.site.cloud:
            return jira_error(404, ["null for uri: user/bulk"])
        wanted = request.args.getlist("accountId")
        if not wanted:
            return jira_error(400, ["The 'accountId' query parameter is required."])
        found = [u for a in dict.fromkeys(wanted) if (u := self.site.by_account.get(a))]
        start = max(0, _int(request.args.get("startAt"), 0))
        size = min(max(1, _int(request.args.get("maxResults"), 10)), USER_BULK_MAX)
        page = found[start : start + size]
        return json_response(
            {
                "maxResults": size,
                "startAt": start,
                "total": len(found),
                "isLast": start + size >= len(found),
                "values": [self.dialect.user(u) for u in page],
            }
        )

    def users_list(self, request: Request) -> Response:
        """Cloud's `GET users/search`: every account (inactive too), `maxResults` up to 1000,
        e-mails hidden by privacy settings left out. Data Center: 404."""
        if not self.site.cloud:
            return jira_error(404, ["null for uri: users/search"])
        start = max(0, _int(request.args.get("startAt"), 0))
        size = min(max(1, _int(request.args.get("maxResults"), 50)), USERS_LIST_MAX)
        users = list(self.site.users)
        return json_response([self.dialect.user(u) for u in users[start : start + size]])

    def _user_matches(self, user: Any, term: str | None, account: str | None) -> bool:
        if account:
            return bool(user.account_id == account)
        needle = (term or "").lower()
        names = [user.display_name.lower(), *user.display_name.lower().split()]
        if not self.site.cloud:
            names.append(user.name.lower())
        # Cloud hides some emails: such users cannot be found by their email either.
        if not (self.site.cloud and user.email_hidden):
            names.append(user.email.lower())
        return any(name.startswith(needle) for name in names)

    def user(self, request: Request) -> Response:
        identifier = (
            request.args.get("accountId")
            if self.site.cloud
            else (request.args.get("username") or request.args.get("key"))
        )
        user = self.site.user_for_identifier(identifier or "")
        if user is None:
            return jira_error(404, [f"The user with identifier '{identifier}' does not exist."])
        return json_response(self.dialect.user(user))

    # ---- JSM ---------------------------------------------------------------------------------
    def request_sla(self, issue: StoredIssue, request: Request) -> Response:
        values = []
        for field_id in ("customfield_10031", "customfield_10030"):
            value = self.site.sla_field(issue, field_id, self.dialect)
            if value is not None:
                value.pop("slaDisplayFormat", None)
                values.append(value)
        start = _int(request.args.get("start"), 0)
        limit = _int(request.args.get("limit"), 50)
        page = values[start : start + limit]
        base = f"{self.dialect.base}/rest/servicedeskapi"
        return json_response(
            {
                "_expands": [],
                "size": len(page),
                "start": start,
                "limit": limit,
                "isLastPage": start + limit >= len(values),
                "values": page,
                "_links": {"base": base, "context": "", "self": f"{base}/request/{issue.id}/sla"},
            }
        )

    def service_registry(self, request: Request) -> Response:
        """The platform's service registry: 1-20 `serviceIds` (ARIs) -> their entries."""
        wanted = request.args.getlist("serviceIds")
        if not 1 <= len(wanted) <= REGISTRY_MAX_IDS:
            return jira_error(400, [f"serviceIds: give 1 to {REGISTRY_MAX_IDS} service ids"])
        return json_response(registry_entries(self.site.estate, wanted))
