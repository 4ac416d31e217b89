"""`slm-sync doctor` against the in-process sandbox (Jira Cloud and Data Center, ServiceNow):
what an admin sees for a correct configuration and for each common mistake."""

from __future__ import annotations

import io
import json
import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from rich.console import Console

from config import HttpSettings, JiraSettings, Settings
from connectors import Pacer, RetryPolicy, set_testing
from connectors.jira import JiraApi, JiraClient
from sandbox import Sandbox
from sync.doctor import Check, checks_as_json, render_checks, run_doctor
from sync.doctor.jira import jira_checks

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
Build = Callable[..., Settings]


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture(scope="module", params=["cloud", "datacenter"])
def site(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A small sandbox per Jira flavour, shared by the module's tests."""
    with Sandbox(
        seed=7,
        services=3,
        sla_records=200,
        jira_flavor=request.param,
        now=FIXED_NOW,
        index_lag_ms=0,
    ) as running:
        yield running


def jira_user_email(sandbox: Sandbox) -> str:
    """An estate person Jira knows by a visible email."""
    return next(
        p.email for p in sandbox.estate.people if p.in_jira and p.active and not p.jira_email_hidden
    )


@pytest.fixture
def settings_for(tmp_path: Path) -> Build:
    """Settings for a sandbox (ServiceNow source, Jira target by default); sections overridable."""

    def build(sandbox: Sandbox, **sections: dict[str, Any]) -> Settings:
        jira: dict[str, Any] = {
            "url": sandbox.jira_url,
            "accountable_field": "customfield_10034",
            "fallback_assignee": jira_user_email(sandbox),
            "jsm_project": "ITSD",
            "requests_per_second": 10_000,
        }
        if sandbox.jira_flavor == "cloud":
            jira.update(email="slm-sync@example.com", api_token="cloud-token-value")
        else:
            jira.update(personal_access_token="dc-pat-value")
        values: dict[str, dict[str, Any]] = {
            "servicenow": {
                "url": sandbox.servicenow_url,
                "username": "integration.user",
                "password": "sn-password-value",
                "requests_per_second": 10_000,
            },
            "jira": jira,
            "sync": {"state_url": f"sqlite:///{tmp_path / 'data' / 'state.db'}"},
        }
        for name, overrides in sections.items():
            values[name] = {**values.get(name, {}), **overrides}
        return Settings.model_validate(values)

    return build


def by_name(checks: list[Check], system: str) -> dict[str, Check]:
    return {check.name: check for check in checks if check.system == system}


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---- a correct configuration -----------------------------------------------------------------
def test_correct_config_passes_every_check(site: Sandbox, settings_for: Build) -> None:
    """With a correct config (ServiceNow source, Jira target) every check passes and the
    report covers reach, auth, tables, project, issue types, fields, people and state."""
    checks = run_doctor(settings_for(site))

    assert checks_as_json(checks)["ok"] is True, [c for c in checks if not c.ok]
    names = {(c.system, c.name) for c in checks}
    assert {("servicenow", "reach"), ("servicenow", "auth"), ("jira", "auth")} <= names
    assert ("servicenow", "table task_sla readable") in names
    assert {("jira", "project SLM"), ("jira", "issue type Sub-task")} <= names
    assert {("jira", "accountable field"), ("jira", "fallback assignee")} <= names
    assert "schema version" in by_name(checks, "state")["state store"].detail


def test_jsm_as_source_checks_service_desk_and_sla_fields(
    site: Sandbox, settings_for: Build
) -> None:
    """With Jira as both source and target, the JSM project and its SLA fields are checked
    and ServiceNow is not contacted at all."""
    checks = run_doctor(settings_for(site, sync={"source": "jira", "target": "jira"}))

    assert all(check.ok for check in checks), [c for c in checks if not c.ok]
    jira = by_name(checks, "jira")
    assert "service_desk" in jira["JSM project ITSD"].detail
    assert "Time to resolution" in jira["SLA fields"].detail
    assert not by_name(checks, "servicenow")


def test_servicenow_target_checks_task_table_without_writing(
    site: Sandbox, settings_for: Build
) -> None:
    """With ServiceNow as the target, the review task table is checked by reading it; the
    detail says write access shows on the first sync, and nothing is created."""
    checks = run_doctor(settings_for(site, sync={"source": "servicenow", "target": "servicenow"}))

    assert all(check.ok for check in checks), [c for c in checks if not c.ok]
    task_table = by_name(checks, "servicenow")["table vtb_task readable"]
    assert "first sync" in task_table.detail
    created = requests.get(f"{site.servicenow_url}/__sandbox/created", timeout=5).json()
    assert not any(created["records"].values())


def test_servicenow_target_without_journal_access_names_the_acl(
    site: Sandbox, settings_for: Build
) -> None:
    """An instance whose ACLs keep the integration user from sys_journal_field (as stock ones
    may): the LT's notes and decisions could not be read back, and doctor says which grant."""
    settings = settings_for(site, sync={"source": "servicenow", "target": "servicenow"})
    assert by_name(run_doctor(settings), "servicenow")["work notes readable (sys_journal_field)"].ok
    site.knobs.update({"servicenow_denied_tables": ["sys_journal_field"]})
    try:
        checks = by_name(run_doctor(settings), "servicenow")
    finally:
        site.knobs.update({"servicenow_denied_tables": []})
    journal = checks["work notes readable (sys_journal_field)"]
    assert not journal.ok
    assert "may not read sys_journal_field" in journal.detail
    assert "grant the integration user's role read access to sys_journal_field" in journal.fix
    assert checks["table vtb_task readable"].ok, "only the journal check fails"


def test_servicenow_source_without_deletion_audits_names_the_acl_and_the_delay(
    site: Sandbox, settings_for: Build
) -> None:
    """Deleted relations are read from sys_audit_delete, which ACLs may keep from the
    integration user: doctor says so, how late deletions are then noticed, and which grant."""
    settings = settings_for(site, sync={"source": "servicenow", "target": "jira"})
    name = "deletions readable (sys_audit_delete)"
    assert by_name(run_doctor(settings), "servicenow")[name].ok
    site.knobs.update({"servicenow_denied_tables": ["sys_audit_delete"]})
    try:
        checks = by_name(run_doctor(settings), "servicenow")
    finally:
        site.knobs.update({"servicenow_denied_tables": []})
    deletions = checks[name]
    assert not deletions.ok
    assert "may not read sys_audit_delete" in deletions.detail
    assert "cmdb_rewalk_seconds (86400 s)" in deletions.detail
    assert "read access to sys_audit_delete" in deletions.fix
    assert checks["table cmdb_rel_ci readable"].ok, "only the deletions check fails"


def test_connector_plugin_without_checks_is_named(site: Sandbox, settings_for: Build) -> None:
    """A connector plugin the doctor has no checks for is listed as such; the rest still run."""
    checks = run_doctor(settings_for(site, sync={"source": "acme-itsm", "target": "jira"}))

    plugin = by_name(checks, "acme-itsm")["connector"]
    assert plugin.ok and "acme-itsm" in plugin.detail
    assert by_name(checks, "jira")["auth"].ok


# ---- credentials -----------------------------------------------------------------------------
def test_wrong_jira_password_fails_auth_and_names_the_secret(
    site: Sandbox, settings_for: Build
) -> None:
    """A rejected Jira credential fails the auth check with a fix naming the environment
    variable and secret file it comes from; the other systems are still checked."""
    jira: dict[str, Any]
    if site.jira_flavor == "cloud":
        jira = {"api_token": "wrong-password"}
        variable = "SLM_SYNC_JIRA__API_TOKEN"
    else:
        jira = {
            "personal_access_token": None,
            "username": "slm-sync",
            "password": "wrong-password",
        }
        variable = "SLM_SYNC_JIRA__PASSWORD"
    checks = run_doctor(settings_for(site, jira=jira))

    auth = by_name(checks, "jira")["auth"]
    assert not auth.ok
    assert auth.fix is not None and variable in auth.fix and variable.lower() in auth.fix
    assert by_name(checks, "jira")["project SLM"].skipped
    assert all(c.ok for c in checks if c.system in ("servicenow", "state"))


def test_wrong_servicenow_password_fails_auth(site: Sandbox, settings_for: Build) -> None:
    """A rejected ServiceNow password fails auth with a fix naming SLM_SYNC_SERVICENOW__PASSWORD;
    its table checks are reported as not checked and Jira is still checked."""
    checks = run_doctor(settings_for(site, servicenow={"password": "wrong-password"}))

    servicenow = by_name(checks, "servicenow")
    assert servicenow["reach"].ok and not servicenow["auth"].ok
    assert "SLM_SYNC_SERVICENOW__PASSWORD" in (servicenow["auth"].fix or "")
    assert servicenow["table task_sla readable"].skipped
    assert all(c.ok for c in checks if c.system == "jira")


def test_missing_jira_credentials_fail_auth(site: Sandbox, settings_for: Build) -> None:
    """Without any Jira credential, auth fails with the variables to set; reach is not tried."""
    checks = run_doctor(settings_for(site, jira={"api_token": None, "personal_access_token": None}))

    jira = by_name(checks, "jira")
    assert not jira["auth"].ok and "SLM_SYNC_JIRA__" in (jira["auth"].fix or "")
    assert jira["reach"].skipped


# ---- names that do not exist -----------------------------------------------------------------
def test_unknown_project_fails_with_visible_projects(site: Sandbox, settings_for: Build) -> None:
    """An unknown jira.project fails the project check with the keys the account can see;
    checks needing the project are not checked, the rest still run."""
    checks = run_doctor(settings_for(site, jira={"project": "NOPE"}))

    jira = by_name(checks, "jira")
    project = jira["project NOPE"]
    assert not project.ok and project.fix is not None
    assert "jira.project" in project.fix and "SLM" in project.fix
    assert jira["issue type Sub-task"].skipped
    assert jira["auth"].ok and jira["accountable field"].ok
    assert all(c.ok for c in checks if c.system in ("servicenow", "state"))


def test_localized_subtask_type_is_suggested(site: Sandbox, settings_for: Build) -> None:
    """On a site whose sub-task type is called "Unteraufgabe", the default "Sub-task" fails
    and the fix suggests the name that exists; the task type still passes."""
    site.jira.site.rename_subtask_type("Unteraufgabe")
    try:
        checks = run_doctor(settings_for(site))
    finally:
        site.jira.site.rename_subtask_type("Sub-task")

    jira = by_name(checks, "jira")
    subtask = jira["issue type Sub-task"]
    assert not subtask.ok
    assert subtask.fix == "set jira.subtask_type to 'Unteraufgabe'"
    assert jira["issue type Task"].ok


def test_missing_servicenow_table_names_its_setting(site: Sandbox, settings_for: Build) -> None:
    """A configured table the instance does not have fails with the settings key to change;
    the other tables still pass."""
    checks = run_doctor(settings_for(site, servicenow={"tables": {"csat": "u_csat_results"}}))

    servicenow = by_name(checks, "servicenow")
    csat = servicenow["table u_csat_results readable"]
    assert not csat.ok and "servicenow.tables.csat" in (csat.fix or "")
    assert servicenow["table task_sla readable"].ok


def test_accountable_field_given_by_name_suggests_its_id(
    site: Sandbox, settings_for: Build
) -> None:
    """jira.accountable_field set to the field's name fails with the id to use instead; a
    field that is not a user picker fails too."""
    by_field_name = run_doctor(settings_for(site, jira={"accountable_field": "Accountable"}))
    not_a_user = run_doctor(settings_for(site, jira={"accountable_field": "customfield_10035"}))

    named = by_name(by_field_name, "jira")["accountable field"]
    assert not named.ok and "customfield_10034" in (named.fix or "")
    textarea = by_name(not_a_user, "jira")["accountable field"]
    assert not textarea.ok and "not a user picker" in textarea.detail


def test_deployment_mismatch_is_reported(site: Sandbox, settings_for: Build) -> None:
    """jira.deployment naming the other flavour fails with the value serverInfo reports."""
    wrong = "datacenter" if site.jira_flavor == "cloud" else "cloud"
    checks = run_doctor(settings_for(site, jira={"deployment": wrong}))

    deployment = by_name(checks, "jira")["deployment"]
    assert not deployment.ok
    assert deployment.fix == f"set jira.deployment to {site.jira_flavor!r} (or 'auto')"
    assert by_name(checks, "jira")["auth"].ok


# ---- reach and state -------------------------------------------------------------------------
def test_unreachable_jira_skips_its_checks_only(site: Sandbox, settings_for: Build) -> None:
    """A Jira URL where nothing listens fails reach with a fix naming jira.url; its other
    checks say "not checked: jira unreachable"; ServiceNow and state are still checked."""
    checks = run_doctor(settings_for(site, jira={"url": closed_port_url()}))

    jira = by_name(checks, "jira")
    assert not jira["reach"].ok and "jira.url" in (jira["reach"].fix or "")
    assert "refused" in jira["reach"].detail.lower()
    others = [c for name, c in jira.items() if name != "reach"]
    assert others and all(c.detail == "not checked: jira unreachable" for c in others)
    assert all(c.ok for c in checks if c.system in ("servicenow", "state"))


def test_unreachable_servicenow_names_its_url_setting(site: Sandbox, settings_for: Build) -> None:
    """A ServiceNow URL where nothing listens fails reach with a fix naming servicenow.url."""
    checks = run_doctor(settings_for(site, servicenow={"url": closed_port_url()}))

    servicenow = by_name(checks, "servicenow")
    assert not servicenow["reach"].ok and "servicenow.url" in (servicenow["reach"].fix or "")
    assert servicenow["auth"].detail == "not checked: servicenow unreachable"
    assert all(c.ok for c in checks if c.system == "jira")


def test_tls_failure_names_the_ca_bundle_setting(site: Sandbox, settings_for: Build) -> None:
    """When TLS fails (here: https to a plain-HTTP port), reach fails with a fix naming
    http.ca_bundle."""
    plain = site.servicenow_url.replace("http://", "https://")
    checks = run_doctor(settings_for(site, servicenow={"url": plain}))

    reach = by_name(checks, "servicenow")["reach"]
    assert not reach.ok and "http.ca_bundle" in (reach.fix or "")


def test_missing_jira_url_fails_reach(site: Sandbox, settings_for: Build) -> None:
    """Without jira.url, reach fails with a fix naming jira.url and its environment variable."""
    checks = run_doctor(settings_for(site, jira={"url": None}))

    reach = by_name(checks, "jira")["reach"]
    assert not reach.ok and "SLM_SYNC_JIRA__URL" in (reach.fix or "")
    assert by_name(checks, "jira")["auth"].skipped


def test_state_store_that_cannot_open_fails_with_its_setting(
    site: Sandbox, settings_for: Build, tmp_path: Path
) -> None:
    """A state URL that cannot be opened fails the state check with a fix naming
    sync.state_url; the connector checks are unaffected."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    checks = run_doctor(settings_for(site, sync={"state_url": f"sqlite:///{blocker}/state.db"}))

    state = by_name(checks, "state")["state store"]
    assert not state.ok and "sync.state_url" in (state.fix or "")
    assert all(c.ok for c in checks if c.system != "state")


def test_table_refused_by_acl_names_the_role(tmp_path: Path) -> None:
    """A table the instance refuses (403) fails its check with the role usually needed, while
    the credentials and the other tables pass (the sandbox has no ACLs: a mock instance)."""
    instance = "https://acme.service-now.com"

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if "/table/task_sla" in str(request.url):
            body = {"error": {"message": "Insufficient rights", "detail": ""}, "status": "failure"}
            return 403, {}, json.dumps(body)
        return 200, {}, json.dumps({"result": [{"sys_id": "0" * 32, "name": "x"}]})

    settings = Settings.model_validate(
        {
            "servicenow": {
                "url": instance,
                "username": "integration.user",
                "password": "pw-1",
                "requests_per_second": 10_000,
            },
            "sync": {
                "source": "servicenow",
                "target": "servicenow",
                "state_url": f"sqlite:///{tmp_path / 'state.db'}",
            },
        }
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(f"{instance}/api/now/table/.*"), answer)
        checks = run_doctor(settings)

    servicenow = by_name(checks, "servicenow")
    task_sla = servicenow["table task_sla readable"]
    assert not task_sla.ok and "itil" in (task_sla.fix or "")
    assert servicenow["auth"].ok and servicenow["table contract_sla readable"].ok


# ---- permissions (the sandbox has no /mypermissions: a double answers it) --------------------
class PermissionsAnswer:
    """A `JiraApi` that answers /mypermissions itself and passes every other call on."""

    def __init__(self, api: JiraApi, granted: set[str]) -> None:
        self.api = api
        self.granted = granted
        self.asked: dict[str, Any] = {}

    @property
    def base_url(self) -> str:
        return self.api.base_url

    @property
    def deployment(self) -> Any:
        return self.api.deployment

    @deployment.setter
    def deployment(self, value: Any) -> None:
        self.api.deployment = value

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        if path != "mypermissions":
            return self.api.call(method, path, **kwargs)
        self.asked = dict(kwargs.get("params") or {})
        keys = str(self.asked["permissions"]).split(",")
        return {"permissions": {k: {"key": k, "havePermission": k in self.granted} for k in keys}}


def test_missing_project_permissions_are_named(site: Sandbox, settings_for: Build) -> None:
    """When /mypermissions says the account lacks some project permissions, the check fails
    and its fix names each missing permission and the project."""
    settings = settings_for(site)
    doubles: list[PermissionsAnswer] = []

    def connect(jira: JiraSettings, http: HttpSettings, policy: RetryPolicy, pacer: Pacer) -> Any:
        granted = {"BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES", "ASSIGN_ISSUES"}
        doubles.append(PermissionsAnswer(JiraClient.connect(jira, http, policy, pacer), granted))
        return doubles[-1]

    checks = jira_checks(settings, RetryPolicy(max_attempts=1), [], connect=connect)

    permissions = by_name(checks, "jira")["permissions in SLM"]
    assert not permissions.ok
    assert permissions.fix is not None and "project SLM" in permissions.fix
    assert "Create attachments" in permissions.fix and "Transition issues" in permissions.fix
    assert "Create issues" not in permissions.fix
    assert doubles[-1].asked["projectKey"] == "SLM"


# ---- output ----------------------------------------------------------------------------------
def test_no_secret_in_json_or_table(site: Sandbox, settings_for: Build) -> None:
    """Neither the JSON nor the rendered table ever contains a configured secret, even when
    the checks that use them fail (rejected password, state URL with a password)."""
    secrets = ["wrong-password", "sn-password-value", "db-password-value"]
    jira = (
        {"api_token": "wrong-password"}
        if site.jira_flavor == "cloud"
        else {"personal_access_token": None, "username": "bot", "password": "wrong-password"}
    )
    state_url = f"postgresql+psycopg://slm:db-password-value@{closed_port_url()[7:]}/state"
    settings = settings_for(site, jira=jira, sync={"state_url": state_url})
    checks = run_doctor(settings)
    console = Console(file=io.StringIO(), width=240, record=True)
    render_checks(checks, console)

    dumped = json.dumps(checks_as_json(checks)) + console.export_text()
    assert not checks_as_json(checks)["ok"]
    assert not [secret for secret in secrets if secret in dumped]


def test_rendered_table_marks_results_and_fixes(site: Sandbox, settings_for: Build) -> None:
    """The table shows ✓ for passed and ✗ for failed checks, each fix, and a summary line."""
    checks = run_doctor(settings_for(site, jira={"project": "NOPE"}))
    console = Console(file=io.StringIO(), width=240, record=True)
    render_checks(checks, console)

    text = console.export_text()
    assert "✓" in text and "✗" in text
    assert "set jira.project to one of" in text
    assert "failed" in text and "not checked" in text


def test_json_lists_every_check(site: Sandbox, settings_for: Build) -> None:
    """checks_as_json gives ok plus one object per check with system, name, ok, detail, fix."""
    checks = run_doctor(settings_for(site))
    body = checks_as_json(checks)

    assert body["ok"] is True
    assert len(body["checks"]) == len(checks)
    assert set(body["checks"][0]) >= {"system", "name", "ok", "detail", "fix"}
    json.dumps(body)


def test_servicenow_source_reports_whether_the_batch_api_is_usable(
    site: Sandbox, settings_for: Build
) -> None:
    """Doctor sends one read through /api/now/v1/batch: usable on the stand-in; an instance
    without it fails the check with what it costs and the setting that turns batching off,
    which itself makes the check pass as "not used"."""
    settings = settings_for(site, sync={"source": "servicenow", "target": "jira"})
    name = "batch API usable (/api/now/v1/batch)"
    assert "usable" in by_name(run_doctor(settings), "servicenow")[name].detail
    site.knobs.update({"servicenow_batch": False})
    try:
        checks = by_name(run_doctor(settings), "servicenow")
    finally:
        site.knobs.update({"servicenow_batch": True})
    batch = checks[name]
    assert not batch.ok and "answered 404" in batch.detail
    assert "servicenow.batch_reads: false" in (batch.fix or "")
    assert checks["table task_sla readable"].ok, "only the batch check fails"
    off = settings_for(
        site, sync={"source": "servicenow", "target": "jira"}, servicenow={"batch_reads": False}
    )
    unused = by_name(run_doctor(off), "servicenow")[name]
    assert unused.ok and "not used" in unused.detail
