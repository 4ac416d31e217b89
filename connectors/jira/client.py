"""The Jira client: the `jira` library behind a small Protocol, with our retries and pacing.

The library's own retries are off (`max_retries=0`) and its session always has timeouts; every
call takes a pacing token, runs under the shared `RetryPolicy`, and has its failures turned
into our error hierarchy with the permission a 401/403 most likely lacks and, for a 400, the
field and the config key that set it. A 429 whose `RateLimit-Reason` names a quota pauses all
Jira calls until the reset time. Where the library has no method (search/jql with a POST body,
reconcileIssues, the JSM services listing) we call through its session.

A response body is read inside the retried attempt: a 2xx whose body is not JSON (cut short by
a proxy) is retried like a 502 for idempotent calls (GET, PUT, searches, user search). Writes
that are not idempotent (create, comment, attachment) are retried only when the tool certainly
did not act on them (429, connection never made); any other failure that may have been applied
(read timeout, reset, 5xx, an unreadable 2xx body) raises `OutcomeUnknown` at once, and the
caller looks the ticket up before creating it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from enum import StrEnum
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jira
import requests
import structlog
from jira.exceptions import JIRAError

from config import HttpSettings, JiraSettings
from connectors.errors import (
    ConnectorError,
    FatalError,
    RateLimited,
    RequestRejected,
    write_failure,
)
from connectors.http import (
    instrument,
    monotonic_deadline,
    raise_for_response,
    timeouts,
    tls_verify,
    transport_error,
    unreadable_body,
)
from connectors.pacing import Pacer
from connectors.retry import RetryPolicy

SYSTEM = "jira"
log = structlog.get_logger("slm_sync.jira.client")
T = TypeVar("T")
QUOTA_REASONS = ("quota",)
IN_DOUBT = "look the issue up by its key label (after the index lag) before writing it again"


class Permission(StrEnum):
    """Jira project permissions, named as an admin sees them in the permission scheme."""

    BROWSE = "Browse projects"
    CREATE = "Create issues"
    EDIT = "Edit issues"
    ASSIGN = "Assign issues"
    WATCHERS = "Manage watchers"
    COMMENT = "Add comments"
    ATTACH = "Create attachments"
    TRANSITION = "Transition issues"
    USERS = "Browse users and groups (global)"


# Which config key sets a field we write, so a 400 names what the admin should fix.
FIELD_CONFIG_KEYS: Mapping[str, str] = {
    "project": "jira.project",
    "issuetype": "jira.issue_type / jira.subtask_type",
    "assignee": "review.people (or jira.fallback_assignee)",
    "parent": "jira.subtask_type",
    "labels": "the ticket key (review plan)",
}


class Deployment(StrEnum):
    """Cloud (REST v3, ADF, accountId) or Data Center (REST v2, wiki markup, user names)."""

    CLOUD = "cloud"
    DATACENTER = "datacenter"

    @property
    def api_version(self) -> str:
        return "3" if self is Deployment.CLOUD else "2"


@dataclass(frozen=True)
class BulkOutcome:
    """One element of a bulk create: the issue created, or why Jira refused it (field errors
    and messages not tied to a field)."""

    key: str | None
    id: str | None
    errors: Mapping[str, str] = field(default_factory=dict)
    status: int | None = None
    messages: tuple[str, ...] = ()


class JiraApi(Protocol):
    """What the connector needs from Jira; `JiraClient` implements it on the `jira` library."""

    deployment: Deployment
    base_url: str

    @property
    def time_zone(self) -> tzinfo:
        """The integration user's time zone: Jira reads JQL date literals in it."""
        ...

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        permission: Permission,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> Any:
        """One REST call; `path` is relative to /rest/api/<version>/ unless it starts with '/'."""
        ...

    def bulk_create(self, updates: list[dict[str, Any]]) -> list[BulkOutcome]:
        """Create up to 50 issues in one call; one outcome per element, in order."""
        ...

    def attach(self, issue: str, filename: str, content: bytes, content_type: str) -> str:
        """Attach a file to an issue (multipart, X-Atlassian-Token: no-check); the new
        attachment's id ("" if the answer does not name it)."""
        ...

    def download(self, url: str, *, what: str) -> bytes:
        """The bytes behind an attachment's `content` URL (on this site)."""
        ...


class JiraClient:
    """`JiraApi` on the `jira` library: auth, TLS, timeouts, pacing, retries, error wording."""

    def __init__(
        self,
        library: jira.JIRA,
        deployment: Deployment,
        policy: RetryPolicy,
        pacer: Pacer,
    ) -> None:
        self.library = library
        self.deployment = deployment
        self.policy = policy
        self.pacer = pacer
        self.base_url = library.server_url
        self._time_zone: tzinfo | None = None
        library._options["rest_api_version"] = deployment.api_version
        library.deploymentType = "Cloud" if deployment is Deployment.CLOUD else "Server"

    @classmethod
    def connect(
        cls,
        settings: JiraSettings,
        http: HttpSettings,
        policy: RetryPolicy | None = None,
        pacer: Pacer | None = None,
    ) -> JiraClient:
        """Build the library client from settings; ask serverInfo for the deployment if `auto`."""
        if not settings.url:
            raise FatalError(
                "jira.url is not set", system=SYSTEM, hint="set jira.url to your site's base URL"
            )
        policy = policy or RetryPolicy(
            max_attempts=http.max_attempts, max_seconds=http.max_retry_seconds
        )
        pacer = pacer or Pacer(rate=settings.requests_per_second, burst=5)
        library = jira.JIRA(
            server=settings.url,
            options={"verify": tls_verify(http)},
            get_server_info=False,
            max_retries=0,
            timeout=timeouts(http),
            logging=False,
            **_auth(settings),
        )
        library._session.headers["User-Agent"] = "slm-sync"
        instrument(library._session, SYSTEM)
        if settings.deployment != "auto":
            return cls(library, Deployment(settings.deployment), policy, pacer)
        probe = cls(library, Deployment.DATACENTER, policy, pacer)
        info = probe.call("GET", "serverInfo", what="serverInfo", permission=Permission.BROWSE)
        cloud = str((info or {}).get("deploymentType", "")).lower() == "cloud"
        return cls(library, Deployment.CLOUD if cloud else Deployment.DATACENTER, policy, pacer)

    @property
    def cloud(self) -> bool:
        return self.deployment is Deployment.CLOUD

    @property
    def time_zone(self) -> tzinfo:
        """The integration user's `timeZone` from `/myself`, read once per client.

        Jira reads JQL date literals ("2026-01-01 10:00") as wall time in the searching
        user's zone; write them with `jql.jql_time(moment, client.time_zone)`. A profile
        without a zone, or one Python does not know, falls back to UTC with a warning.
        """
        if self._time_zone is None:
            me = self.call("GET", "myself", what="own profile", permission=Permission.BROWSE)
            self._time_zone = _zone(str((me or {}).get("timeZone") or ""))
        return self._time_zone

    def url(self, path: str) -> str:
        """Absolute URL: REST API paths are relative, other paths ('/jsm/...') site-absolute."""
        if path.startswith("/"):
            return self.base_url + path
        return str(self.library._get_url(path))

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        permission: Permission,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> Any:
        url = self.url(path)
        data = None if body is None else json.dumps(body)

        def send() -> Any:
            response = self.library._session.request(method, url, params=params, data=data)
            return _body(response, what)

        return self._run(send, what=what, permission=permission, idempotent=idempotent)

    def bulk_create(self, updates: list[dict[str, Any]]) -> list[BulkOutcome]:
        """POST issue/bulk through the session (the library keeps only `errors` of a refused
        element, not its `errorMessages`); elements are matched by `failedElementNumber`."""
        if len(updates) > 50:
            raise ValueError("Jira bulk create takes at most 50 issues per call")
        url = self.url("issue/bulk")
        data = json.dumps({"issueUpdates": updates})

        def send() -> list[BulkOutcome]:
            try:
                response = self.library._session.request("POST", url, data=data)
            except JIRAError as error:  # the library's session raises on 4xx / 5xx
                if error.response is None:
                    raise
                response = error.response
            body = _bulk_body(response)
            if body is None:
                raise self._error(response, "bulk create", Permission.CREATE)
            return _outcomes(body, len(updates))

        return self._run(send, what="bulk create", permission=Permission.CREATE, idempotent=False)

    def attach(self, issue: str, filename: str, content: bytes, content_type: str) -> str:
        url = self.url(f"issue/{issue}/attachments")
        # Content-Type None lets requests write the multipart boundary instead of the
        # session's JSON default; Jira refuses attachments without the XSRF opt-out header.
        headers = {"X-Atlassian-Token": "no-check", "Content-Type": None}

        def send() -> requests.Response:
            return self.library._session.request(
                "POST", url, files={"file": (filename, content, content_type)}, headers=headers
            )

        response = self._run(
            send, what=f"attachment on {issue}", permission=Permission.ATTACH, idempotent=False
        )
        return _attachment_id(response)

    def download(self, url: str, *, what: str) -> bytes:
        if not url.startswith(self.base_url):
            raise RequestRejected(f"jira: {what} is not on this site ({url})", system=SYSTEM)

        def send() -> bytes:
            response = self.library._session.get(url, headers={"Accept": "*/*"})
            if response.status_code >= 400:
                raise self._error(response, what, Permission.BROWSE)
            return bytes(response.content)

        return self._run(send, what=what, permission=Permission.BROWSE, idempotent=True)

    # ---- one call under pacing, retries and error translation -------------------------------
    def _run(
        self, send: Callable[[], T], *, what: str, permission: Permission, idempotent: bool
    ) -> T:
        def attempt() -> T:
            self.pacer.acquire()
            try:
                return self._translated(send, what, permission)
            except ConnectorError as error:
                failure = error if idempotent else write_failure(error, what=what, hint=IN_DOUBT)
                if failure is error:
                    raise
                raise failure from error

        return self.policy.call(attempt, system=SYSTEM, what=what)

    def _translated(self, send: Callable[[], T], what: str, permission: Permission) -> T:
        try:
            return send()
        except JIRAError as error:
            if error.response is None:
                raise ConnectorError(f"jira: {error.text} for {what}", system=SYSTEM) from None
            raise self._error(error.response, what, permission) from None
        except requests.RequestException as error:
            raise transport_error(error, system=SYSTEM, what=what) from None

    def _error(
        self, response: requests.Response, what: str, permission: Permission
    ) -> ConnectorError:
        try:
            raise_for_response(
                response,
                system=SYSTEM,
                what=what,
                auth_hint=_auth_hint(permission, response.status_code),
                quota_reasons=QUOTA_REASONS,
            )
        except RateLimited as limited:
            if limited.quota and limited.retry_after:
                self.pacer.pause_until(
                    monotonic_deadline(limited.retry_after), reason="quota", system=SYSTEM
                )
            return limited
        except RequestRejected as rejected:
            return _rejected(rejected, response)
        except ConnectorError as error:
            return error
        return ConnectorError(f"jira answered {response.status_code} for {what}", system=SYSTEM)


def _body(response: requests.Response, what: str) -> Any:
    """The JSON of a 2xx answer (None if empty); a body cut short is a transient error."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise unreadable_body(response, system=SYSTEM, what=what) from None


def _zone(name: str) -> tzinfo:
    """The zone Jira names (an IANA id such as "America/Los_Angeles"), else UTC."""
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        log.warning(
            "jira.time_zone_unknown",
            time_zone=name,
            hint="JQL dates are written in UTC; set the integration user's time zone in Jira",
        )
        return UTC


def _auth(settings: JiraSettings) -> dict[str, Any]:
    """Library auth arguments: Cloud email + API token; Data Center PAT or basic auth."""
    if settings.email and settings.api_token:
        return {"basic_auth": (settings.email, settings.api_token.get_secret_value())}
    if settings.personal_access_token:
        return {"token_auth": settings.personal_access_token.get_secret_value()}
    if settings.username and settings.password:
        return {"basic_auth": (settings.username, settings.password.get_secret_value())}
    raise FatalError(
        "no Jira credentials configured",
        system=SYSTEM,
        hint="Cloud: jira.email + SLM_SYNC_JIRA__API_TOKEN; Data Center: "
        "SLM_SYNC_JIRA__PERSONAL_ACCESS_TOKEN or jira.username + SLM_SYNC_JIRA__PASSWORD",
    )


def _auth_hint(permission: Permission, status: int) -> str:
    if status == 401:
        return "check the Jira credentials (Cloud: email + API token; DC: token or password)"
    return f"grant the slm-sync account the '{permission.value}' permission in the project"


def _rejected(rejected: RequestRejected, response: requests.Response) -> RequestRejected:
    """A 400 naming each refused field and the config key that set it."""
    try:
        body = response.json()
    except ValueError:
        return rejected
    errors = body.get("errors") if isinstance(body, dict) else None
    errors = errors if isinstance(errors, dict) else None
    messages = body.get("errorMessages") if isinstance(body, dict) else None
    field_errors = {str(k): str(v) for k, v in (errors or {}).items()}
    parts = [f"{name}: {text}" for name, text in field_errors.items()]
    parts += [str(m) for m in messages or []]
    keys = [FIELD_CONFIG_KEYS.get(name, "") for name in field_errors]
    hint = ", ".join(k for k in keys if k) or rejected.hint
    summary = str(rejected.args[0]).split(":", 1)[0]
    return RequestRejected(
        f"{summary}: {'; '.join(parts) or response.text[:300]}",
        system=SYSTEM,
        status=rejected.status,
        field_errors=field_errors,
        hint=f"check {hint}" if hint else None,
    )


def _bulk_body(response: requests.Response) -> dict[str, Any] | None:
    """The per-element answer of a bulk create (201, or 400 when every element failed), or
    None when Jira answered for the request as a whole (auth, 429, 5xx, a plain 400)."""
    if response.status_code not in (201, 400):
        return None
    body = _body(response, "bulk create")
    if not isinstance(body, dict) or not isinstance(body.get("issues"), list):
        return None
    positioned = [
        e for e in body.get("errors") or [] if isinstance(e, dict) and "failedElementNumber" in e
    ]
    if response.status_code == 400 and not positioned:
        return None  # e.g. more than 50 elements: refused as a whole
    return body


def _outcomes(body: Mapping[str, Any], count: int) -> list[BulkOutcome]:
    """One outcome per element sent: refusals by `failedElementNumber`, the created issues in
    order for the rest (an element with neither stays unknown: key and errors empty)."""
    failed: dict[int, Mapping[str, Any]] = {}
    for entry in body.get("errors") or []:
        if isinstance(entry, dict) and isinstance(entry.get("failedElementNumber"), int):
            failed[entry["failedElementNumber"]] = entry
    created = iter(body.get("issues") or [])
    outcomes: list[BulkOutcome] = []
    for position in range(count):
        if position in failed:
            outcomes.append(_refused(failed[position]))
            continue
        issue = next(created, None)
        if isinstance(issue, dict) and issue.get("key") and issue.get("id"):
            outcomes.append(BulkOutcome(str(issue["key"]), str(issue["id"])))
        else:
            outcomes.append(BulkOutcome(None, None))
    return outcomes


def _refused(entry: Mapping[str, Any]) -> BulkOutcome:
    details = entry.get("elementErrors") or {}
    errors = {str(k): str(v) for k, v in dict(details.get("errors") or {}).items()}
    messages = tuple(str(m) for m in details.get("errorMessages") or [])
    status = entry.get("status")
    return BulkOutcome(None, None, errors, status if isinstance(status, int) else 400, messages)


def _attachment_id(response: requests.Response) -> str:
    """The id of the attachment an upload created: its answer is the list of attachments
    added (one per file sent)."""
    try:
        added = response.json()
    except ValueError:
        return ""
    first = added[0] if isinstance(added, list) and added else {}
    return str(first.get("id") or "") if isinstance(first, dict) else ""
