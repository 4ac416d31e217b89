"""Doctor checks for Jira: reach, deployment, auth, the review project and what tickets need
there (permissions, issue types, accountable field, fallback assignee), and, when JSM is the
source, the service desk project and its SLA fields.

All calls go through the connector's `JiraClient` (pacing, retries, error wording) and read
only; the deployment is probed over REST v2, which Cloud and Data Center both serve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config import HttpSettings, JiraSettings, Settings
from connectors import AuthError, ConnectorError, FatalError, Pacer, RequestRejected, RetryPolicy
from connectors.jira import Deployment, JiraApi, JiraClient, Permission
from sync.doctor.check import Check, CheckList, Verdict, failed, passed, unreachable
from sync.doctor.jira_mapping import NAME as MAPPING_CHECK
from sync.doctor.jira_mapping import mapping_check
from sync.doctor.jira_site import Site, auth_fix, env

SYSTEM = "jira"
URL_KEYS = "jira.url"
Connect = Callable[[JiraSettings, HttpSettings, RetryPolicy, Pacer], JiraApi]


def _connect(
    settings: JiraSettings, http: HttpSettings, policy: RetryPolicy, pacer: Pacer
) -> JiraApi:
    return JiraClient.connect(settings, http, policy, pacer)


def jira_checks(
    settings: Settings, policy: RetryPolicy, secrets: list[str], connect: Connect = _connect
) -> list[Check]:
    """Every Jira check the configured roles (target, JSM source) need."""
    checks = CheckList(SYSTEM, secrets)
    names = planned(settings)
    if not settings.jira.url:
        checks.add("reach", failed("jira.url is not set", f"set jira.url ({env('url')})"))
        checks.skip(names[1:], "jira.url not set")
        return checks.checks
    pacer = Pacer(rate=settings.jira.requests_per_second, burst=5)
    probe_settings = settings.jira.model_copy(update={"deployment": "datacenter"})
    try:
        probe = connect(probe_settings, settings.http, policy, pacer)
    except FatalError as error:  # no credentials configured
        checks.add("auth", failed(str(error.args[0]), error.hint or auth_fix(settings.jira)))
        checks.skip([n for n in names if n != "auth"], "no jira credentials")
        return checks.checks
    reach, info = server_info(probe)
    if not checks.add("reach", reach):
        checks.skip(names[1:], "jira unreachable")
        return checks.checks
    detected = _deployment(info, settings.jira)
    if info is None:
        checks.skip(["deployment"], "jira credentials rejected")
    else:
        checks.add("deployment", deployment_verdict(info, settings.jira))
    site = Site(_rebuild(probe, detected, policy, pacer), settings)
    if not checks.run("auth", site.myself, fix=auth_fix(settings.jira)):
        checks.skip(names[3:], "jira credentials rejected")
        return checks.checks
    if settings.sync.target == SYSTEM:
        _target_checks(checks, site, settings.jira)
    if settings.sync.source == SYSTEM:
        _source_checks(checks, site, settings.jira)
    return checks.checks


def planned(settings: Settings) -> list[str]:
    """Names of the checks that will run, in order (to report the skipped ones)."""
    jira = settings.jira
    names = ["reach", "deployment", "auth"]
    if settings.sync.target == SYSTEM:
        names += [
            f"project {jira.project}",
            f"permissions in {jira.project}",
            f"issue type {jira.issue_type}",
            f"issue type {jira.subtask_type}",
            "accountable field",
            "fallback assignee",
        ]
    if settings.sync.source == SYSTEM:
        names += [f"JSM project {jira.jsm_project or '(not set)'}", "SLA fields", "service field"]
        names.append(MAPPING_CHECK)
    return names


def _target_checks(checks: CheckList, site: Site, jira: JiraSettings) -> None:
    project = f"project {jira.project}"
    if not checks.run(project, lambda: site.project(jira.project)):
        reason = f"project {jira.project} not found"
        checks.skip(
            [
                f"permissions in {jira.project}",
                f"issue type {jira.issue_type}",
                f"issue type {jira.subtask_type}",
            ],
            reason,
        )
    else:
        checks.run(f"permissions in {jira.project}", site.permissions)
        checks.run(f"issue type {jira.issue_type}", site.task_type)
        checks.run(f"issue type {jira.subtask_type}", site.subtask_type)
    checks.run("accountable field", site.accountable_field)
    checks.run("fallback assignee", site.fallback_assignee)


def _source_checks(checks: CheckList, site: Site, jira: JiraSettings) -> None:
    checks.run(f"JSM project {jira.jsm_project or '(not set)'}", site.jsm_project)
    checks.run("SLA fields", site.sla_fields)
    checks.run("service field", site.service_field)
    checks.run(MAPPING_CHECK, lambda: mapping_check(site))


# ---- reach and deployment --------------------------------------------------------------------
def server_info(api: JiraApi) -> tuple[Verdict, dict[str, Any] | None]:
    """Reach verdict and serverInfo (None when the site answered but refused us)."""
    try:
        info = api.call("GET", "serverInfo", what="serverInfo", permission=Permission.BROWSE)
    except AuthError:
        return passed(f"{api.base_url} answered (credentials refused)"), None
    except RequestRejected as error:
        return failed(
            f"{api.base_url} answered {error.status} for serverInfo: not a Jira REST API",
            "set jira.url to the site's base URL (https://<site>.atlassian.net, or the Data "
            "Center base URL with its context path)",
        ), None
    except ConnectorError as error:
        return unreachable(error, url_keys=URL_KEYS), None
    info = dict(info or {})
    version = info.get("version", "?")
    return passed(f"{api.base_url} answered: {info.get('deploymentType', '?')} {version}"), info


def _deployment(info: dict[str, Any] | None, jira: JiraSettings) -> Deployment:
    if info is None:
        return Deployment.CLOUD if jira.deployment == "cloud" else Deployment.DATACENTER
    cloud = str(info.get("deploymentType", "")).lower() == "cloud"
    return Deployment.CLOUD if cloud else Deployment.DATACENTER


def deployment_verdict(info: dict[str, Any], jira: JiraSettings) -> Verdict:
    """The site's deploymentType against `jira.deployment`."""
    detected = _deployment(info, jira)
    says = f"site says deploymentType {info.get('deploymentType', '?')!r}"
    if jira.deployment == "auto":
        return passed(f"{says}; jira.deployment auto uses {detected.value}")
    if jira.deployment == detected.value:
        return passed(f"{says}, as jira.deployment says")
    return failed(
        f"{says}, but jira.deployment is {jira.deployment!r}",
        f"set jira.deployment to {detected.value!r} (or 'auto')",
    )


def _rebuild(probe: JiraApi, deployment: Deployment, policy: RetryPolicy, pacer: Pacer) -> JiraApi:
    if isinstance(probe, JiraClient):
        return JiraClient(probe.library, deployment, policy, pacer)
    probe.deployment = deployment  # a test double
    return probe
