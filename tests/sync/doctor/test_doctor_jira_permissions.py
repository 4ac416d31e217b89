"""doctor's Jira permission check against the stand-in's /mypermissions: what is granted
passes, what the account lacks is named, and a 404 there is a failure, never a pass."""

from __future__ import annotations

from typing import Any

import requests

from config import HttpSettings, JiraSettings
from connectors import Pacer, RequestRejected, RetryPolicy
from connectors.jira import JiraApi, JiraClient
from sandbox import Sandbox
from sync.doctor.jira import jira_checks

from .test_doctor import Build, by_name, settings_for, site  # noqa: F401  (fixtures)


class Answers404:
    """A `JiraApi` whose /mypermissions answers 404 (a proxy or a wrong context path)."""

    def __init__(self, api: JiraApi) -> None:
        self.api = api
        self.base_url = api.base_url
        self.deployment = api.deployment

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        if path == "mypermissions":
            raise RequestRejected("jira answered 404 for mypermissions", system="jira", status=404)
        return self.api.call(method, path, **kwargs)


def test_granted_permissions_pass(site: Sandbox, settings_for: Build) -> None:  # noqa: F811
    """The stand-in grants every project permission: the check passes naming them."""
    checks = jira_checks(settings_for(site), RetryPolicy(max_attempts=1), [])
    verdict = by_name(checks, "jira")["permissions in SLM"]
    assert verdict.ok and "Create attachments" in verdict.detail


def test_denied_permissions_are_named(site: Sandbox, settings_for: Build) -> None:  # noqa: F811
    """A permission /mypermissions reports as not held fails the check, naming it."""
    site.jira.realism.update({"denied_permissions": ["TRANSITION_ISSUES"]})
    try:
        checks = jira_checks(settings_for(site), RetryPolicy(max_attempts=1), [])
    finally:
        site.jira.realism.update({"denied_permissions": []})
    verdict = by_name(checks, "jira")["permissions in SLM"]
    assert not verdict.ok and "Transition issues" in (verdict.fix or "")
    assert "Create issues" not in (verdict.fix or "")
    counts = requests.get(f"{site.jira_url}/__sandbox/requests", timeout=5).json()["by_route"]
    version = "3" if site.jira_flavor == "cloud" else "2"
    assert counts.get(f"GET /rest/api/{version}/mypermissions", 0) >= 1


def test_a_404_on_mypermissions_is_a_failure(site: Sandbox, settings_for: Build) -> None:  # noqa: F811
    """A site that answers 404 for /mypermissions does not pass: the fix names jira.url."""

    def connect(jira: JiraSettings, http: HttpSettings, policy: RetryPolicy, pacer: Pacer) -> Any:
        return Answers404(JiraClient.connect(jira, http, policy, pacer))

    checks = jira_checks(settings_for(site), RetryPolicy(max_attempts=1), [], connect=connect)
    verdict = by_name(checks, "jira")["permissions in SLM"]
    assert not verdict.ok and "jira.url" in (verdict.fix or "")
