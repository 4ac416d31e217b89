"""Read-only questions to a Jira site about what review tickets and JSM reads need: the
projects, project permissions, issue types, fields and people; each answered as a `Verdict`."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from config import JiraSettings, Settings, env_name, secrets_dir
from connectors import AuthError, RequestRejected
from connectors.jira import JiraApi, PeopleDirectory, Permission
from sync.doctor.check import Verdict, failed, passed

# What review tickets need in the project (EDIT_ISSUES: updates change summary, body, due date).
PERMISSIONS = {
    "BROWSE_PROJECTS": "Browse projects",
    "CREATE_ISSUES": "Create issues",
    "EDIT_ISSUES": "Edit issues",
    "ASSIGN_ISSUES": "Assign issues",
    "ADD_COMMENTS": "Add comments",
    "CREATE_ATTACHMENTS": "Create attachments",
    "MANAGE_WATCHERS": "Manage watchers",
    "TRANSITION_ISSUES": "Transition issues",
}
USER_PICKER = "com.atlassian.jira.plugin.system.customfieldtypes:userpicker"
# The connector discovers SLA fields by this schema type too (connectors.jira.jsm).
SLA_FIELD = "com.atlassian.servicedesk:sd-sla-field"
LISTED = 15  # names suggested in a fix, at most


def env(key: str) -> str:
    """The environment variable that sets `jira.<key>`."""
    return env_name(("jira", key))


def credential_in_use(jira: JiraSettings) -> tuple[str, str] | None:
    """(settings key of the secret, what it is) in the order `JiraClient` picks credentials."""
    if jira.email and jira.api_token:
        return "api_token", f"the API token of {jira.email}"
    if jira.personal_access_token:
        return "personal_access_token", "the personal access token"
    if jira.username and jira.password:
        return "password", f"the password of {jira.username}"
    return None


def auth_fix(jira: JiraSettings) -> str:
    """Which credential to check, and where it comes from (env var or secret file)."""
    in_use = credential_in_use(jira)
    if in_use is None:
        return (
            f"Cloud: set jira.email and {env('api_token')}; Data Center: set "
            f"{env('personal_access_token')} (or jira.username and {env('password')})"
        )
    key, what = in_use
    variable = env(key)
    return (
        f"check {what} in {variable} (or the secret file {secrets_dir() / variable.lower()}); "
        "Cloud needs an API token of the account's email, Data Center a token or password"
    )


class Site:
    """Read-only questions to one Jira site, each answered as a `Verdict`."""

    def __init__(self, api: JiraApi, settings: Settings) -> None:
        self.api = api
        self.settings = settings
        self.jira = settings.jira

    def get(self, path: str, what: str, params: dict[str, Any] | None = None) -> Any:
        return self.api.call("GET", path, what=what, permission=Permission.BROWSE, params=params)

    def myself(self) -> Verdict:
        """The credentials are accepted; who we are."""
        try:
            me = dict(self.get("myself", "myself") or {})
        except AuthError as error:
            refused = "401" if "answered 401" in str(error) else "403"
            _, what = credential_in_use(self.jira) or ("", "the credentials")
            return failed(
                f"the site refused {what} ({refused} for myself)",
                auth_fix(self.jira)
                + ("" if refused == "401" else "; the account also needs Jira product access"),
            )
        name = me.get("displayName") or me.get("name") or me.get("accountId") or "?"
        return passed(f"authenticated as {name} ({self.api.deployment.value})")

    # ---- the review project --------------------------------------------------------------
    def project(self, key: str, *, setting: str = "jira.project") -> Verdict:
        """The project exists and the account can see it."""
        found = self._project(key)
        if found is None:
            return self._no_project(key, setting)
        return passed(f"{found.get('name', key)} ({found.get('projectTypeKey', '?')})")

    def _project(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.get(f"project/{key}", f"project {key}") or {})
        except RequestRejected:  # Jira answers 404 alike for missing and hidden projects
            return None

    def _no_project(self, key: str, setting: str) -> Verdict:
        return failed(
            f"no project {key} visible to the slm-sync account",
            f"set {setting} to one of: {self._project_keys()} (projects the account "
            f"sees), or grant it 'Browse projects' in {key}",
        )

    def _project_keys(self) -> str:
        listed = self.get("project", "project list") or []
        keys = [str(p.get("key")) for p in listed if isinstance(p, dict)]
        return ", ".join(keys[:LISTED]) or "(none)"

    def permissions(self) -> Verdict:
        """The project permissions review tickets need (GET mypermissions)."""
        wanted = dict(PERMISSIONS)
        if not self.jira.add_watchers:
            wanted.pop("MANAGE_WATCHERS")
        try:
            answer = self.get(
                "mypermissions",
                f"permissions in {self.jira.project}",
                {"projectKey": self.jira.project, "permissions": ",".join(wanted)},
            )
        except RequestRejected as error:
            if error.status != 404:
                raise
            # Jira answers GET mypermissions on every supported version: a 404 means the URL
            # does not reach Jira's REST API (a proxy, a context path) or the project is gone.
            return failed(
                f"the site answered 404 for /rest/api/{self.api.deployment.api_version}/"
                "mypermissions: nothing shows the account's permissions",
                f"check that jira.url is the site's base URL (with any context path, e.g. "
                f"https://host/jira) and that project {self.jira.project} exists",
            )
        held = (answer or {}).get("permissions") or {}
        missing = [
            label
            for key, label in wanted.items()
            if not (held.get(key) or {}).get("havePermission")
        ]
        if missing:
            return failed(
                f"missing: {', '.join(missing)}",
                f"grant the slm-sync account {', '.join(missing)} in the permission scheme "
                f"of project {self.jira.project}",
            )
        return passed(f"granted: {', '.join(wanted.values())}")

    @cached_property
    def issue_types(self) -> list[dict[str, Any]]:
        """The issue types the account can create in the review project (createmeta)."""
        page = self.api.call(
            "GET",
            f"issue/createmeta/{self.jira.project}/issuetypes",
            what=f"create metadata of project {self.jira.project}",
            permission=Permission.CREATE,
            params={"maxResults": 200},
        )
        page = page or {}
        return list(page.get("issueTypes") or page.get("values") or [])

    def task_type(self) -> Verdict:
        """`jira.issue_type` is a standard type the account can create in the project."""
        return self._type(self.jira.issue_type, subtask=False, setting="jira.issue_type")

    def subtask_type(self) -> Verdict:
        """`jira.subtask_type` is a sub-task type of the project (sites localize its name)."""
        return self._type(self.jira.subtask_type, subtask=True, setting="jira.subtask_type")

    def _type(self, wanted: str, *, subtask: bool, setting: str) -> Verdict:
        kind = "sub-task type" if subtask else "standard issue type"
        same_kind = [t for t in self.issue_types if bool(t.get("subtask")) == subtask]
        names = [str(t.get("name")) for t in same_kind]
        project = self.jira.project
        if not self.issue_types:
            return failed(
                f"the account can create no issue type in {project}",
                f"grant the slm-sync account 'Create issues' in project {project}",
            )
        for issue_type in same_kind:
            if wanted.lower() == str(issue_type.get("name", "")).lower() or wanted == str(
                issue_type.get("id")
            ):
                return passed(f"{kind} {issue_type.get('name')!r} (id {issue_type.get('id')})")
        choices = ", ".join(repr(n) for n in names[:LISTED]) or "(none)"
        suggestion = f"{names[0]!r}" if len(names) == 1 else f"one of: {choices}"
        return failed(
            f"no {kind} {wanted!r} in {project}; {kind}s there: {choices}",
            f"set {setting} to {suggestion}",
        )

    # ---- fields and people ---------------------------------------------------------------
    @cached_property
    def fields(self) -> list[dict[str, Any]]:
        return [f for f in self.get("field", "field list") or [] if isinstance(f, dict)]

    def accountable_field(self) -> Verdict:
        """`jira.accountable_field` is the id of a user picker field."""
        wanted = self.jira.accountable_field
        if not wanted:
            return passed("not set: the accountable person is named in the ticket body")
        pickers = [f for f in self.fields if _is_user_picker(f)]
        listed = ", ".join(f"{f.get('id')} ({f.get('name')})" for f in pickers[:LISTED])
        by_id = next((f for f in self.fields if f.get("id") == wanted), None)
        if by_id is None:
            named = next((f for f in self.fields if f.get("name") == wanted), None)
            if named is not None:
                return failed(
                    f"{wanted!r} is a field name; the setting takes its id ({named.get('id')})",
                    f"set jira.accountable_field to {named.get('id')!r}",
                )
            return failed(
                f"no field {wanted!r} on this site",
                f"set jira.accountable_field to the id of a user picker field: "
                f"{listed or '(none on this site: create one)'}",
            )
        if not _is_user_picker(by_id):
            schema = by_id.get("schema") or {}
            return failed(
                f"{wanted} ({by_id.get('name')}) is a {schema.get('type', '?')} field, "
                "not a user picker",
                f"set jira.accountable_field to a user picker field: {listed or '(none)'}",
            )
        return passed(f"{wanted} ({by_id.get('name')}) is a user picker")

    def fallback_assignee(self) -> Verdict:
        """`jira.fallback_assignee` (an email) names a Jira user."""
        email = self.jira.fallback_assignee
        if not email:
            return passed("not set: tickets whose responsible person Jira lacks stay unassigned")
        people = PeopleDirectory.from_settings(self.api, self.settings)
        identity = people.by_email(email)
        if identity is None:
            return failed(
                f"no Jira user found for {email}",
                "set jira.fallback_assignee to the email of an active Jira user; Cloud hides "
                "some emails: then add review.people.<email>.jira_account_id",
            )
        return passed(f"{email} is {identity}")

    # ---- JSM as the source ---------------------------------------------------------------
    def jsm_project(self) -> Verdict:
        """`jira.jsm_project` is a service desk project the account can see."""
        key = self.jira.jsm_project
        if not key:
            return failed(
                "jira.jsm_project is not set (Jira is the source)",
                f"set jira.jsm_project ({env('jsm_project')}) to the service desk's key",
            )
        found = self._project(key)
        if found is None:
            return self._no_project(key, "jira.jsm_project")
        kind = str(found.get("projectTypeKey", "?"))
        if kind != "service_desk":
            return failed(
                f"{key} is a {kind} project, not a service desk",
                "set jira.jsm_project to a Jira Service Management project",
            )
        return passed(f"{found.get('name', key)} (service_desk)")

    def sla_fields(self) -> Verdict:
        """The site has JSM SLA fields (the SLA records are read from them)."""
        found = [str(f.get("name")) for f in self.fields if _custom(f) == SLA_FIELD]
        if not found:
            return failed(
                "no JSM SLA field visible (schema com.atlassian.servicedesk:sd-sla-field)",
                "install Jira Service Management, define SLAs in the service desk, and make "
                "the slm-sync account an agent of it",
            )
        return passed(", ".join(found[:LISTED]))

    def service_field(self) -> Verdict:
        """`jira.service_field` (id or name) names a field of the site."""
        wanted = self.jira.service_field
        for field in self.fields:
            if wanted in {field.get("id"), field.get("name"), field.get("key")}:
                return passed(f"{field.get('id')} ({field.get('name')})")
        return failed(
            f"no field {wanted!r} on this site",
            "set jira.service_field to the id or name of the field holding a request's service",
        )


def _custom(field: dict[str, Any]) -> str:
    return str((field.get("schema") or {}).get("custom") or "")


def _is_user_picker(field: dict[str, Any]) -> bool:
    # Custom fields only: assignee and reporter are user fields too, but not ours to set.
    schema = field.get("schema") or {}
    custom = bool(field.get("custom")) or str(field.get("id", "")).startswith("customfield_")
    return _custom(field) == USER_PICKER or (custom and schema.get("type") == "user")
