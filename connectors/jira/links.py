"""Links people click to open a Jira issue: `<site>/browse/<KEY>`, and the content URL of an
attachment an inline image shows.

The site is `jira.public_url` when people reach Jira through a proxy, else the API's base URL
(with any Data Center context path).
"""

from __future__ import annotations

from urllib.parse import quote

from config import JiraSettings
from review import SourceRef

# Mapped Jira records that belong to one request (their id starts with its key).
ISSUE_TABLES = frozenset({"sla_cycle", "satisfaction", "request"})


def site_url(settings: JiraSettings, api_base: str) -> str:
    """The base of links to issues: `public_url`, else the API's base URL."""
    return (settings.public_url or api_base).rstrip("/")


def browse_url(site: str | None, key: str) -> str | None:
    """The issue's page; None without a site or key."""
    if not site or not key:
        return None
    return f"{site.rstrip('/')}/browse/{quote(key, safe='')}"


def attachment_content_url(site: str, attachment_id: str) -> str:
    """Where an attachment's bytes are served to a person signed in to the site (REST v3
    `GET /attachment/content/{id}`, a redirect to the file): what an inline chart shows."""
    return f"{site.rstrip('/')}/rest/api/3/attachment/content/{quote(attachment_id, safe='')}"


def source_url(site: str | None, ref: SourceRef) -> str | None:
    """The issue a record read from Jira belongs to: a request (`SD-12`), or the request of an
    SLA cycle (`SD-12:customfield_10030:0`) or satisfaction answer."""
    if ref.system != "jira" or ref.table not in ISSUE_TABLES:
        return None
    return browse_url(site, ref.id.split(":", 1)[0])
