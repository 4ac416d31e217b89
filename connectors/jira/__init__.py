"""Jira Cloud and Data Center: review tickets as the target, JSM requests as an SLA source.

Public surface: `JiraTarget` / `JiraSource` (build with `from_settings`), the `JiraApi` seam and
its `JiraClient` implementation on the `jira` library, the document renderers and JQL quoting.
Imports `connectors` (base, errors, retry, pacing), `review` and `config`.
"""

from __future__ import annotations

from connectors.jira.adf import to_adf
from connectors.jira.client import BulkOutcome, Deployment, JiraApi, JiraClient, Permission
from connectors.jira.jql import quote as jql_quote
from connectors.jira.people import PeopleDirectory
from connectors.jira.source import JiraSource
from connectors.jira.target import JiraTarget
from connectors.jira.wiki import to_wiki
from connectors.registry import ConnectorPlugin

__all__ = [
    "BulkOutcome",
    "Deployment",
    "JiraApi",
    "JiraClient",
    "JiraSource",
    "JiraTarget",
    "PeopleDirectory",
    "Permission",
    "jql_quote",
    "plugin",
    "to_adf",
    "to_wiki",
]

# The entry point `slm_sync.connectors: jira` names this object (see pyproject.toml).
plugin = ConnectorPlugin(
    name="jira", source=JiraSource.from_settings, target=JiraTarget.from_settings, mapping="jira"
)
