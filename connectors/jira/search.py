"""JQL search with an explicit field list, paged as each deployment pages.

Cloud: POST /rest/api/3/search/jql with `nextPageToken` (and `reconcileIssues` to read issues
just written through the index lag); a repeated token stops paging with an error. Data Center:
POST /rest/api/2/search with `startAt` / `total`; paging stops on an empty page, not a short one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from connectors.errors import ConnectorError
from connectors.jira.client import JiraApi, Permission

CLOUD_PAGE = 100  # Cloud's maximum when fields other than id/key are asked for
DC_PAGE = 100


def search(
    api: JiraApi,
    jql: str,
    fields: Sequence[str],
    *,
    reconcile: Sequence[int] = (),
    what: str = "issue search",
) -> Iterator[list[dict[str, Any]]]:
    """Pages of issues matching `jql`, each issue with only `fields`."""
    if api.deployment.value == "cloud":
        return _cloud_pages(api, jql, list(fields), list(reconcile), what)
    return _dc_pages(api, jql, list(fields), what)


def _cloud_pages(
    api: JiraApi, jql: str, fields: list[str], reconcile: list[int], what: str
) -> Iterator[list[dict[str, Any]]]:
    token: str | None = None
    seen: set[str] = set()
    while True:
        body: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": CLOUD_PAGE}
        if token:
            body["nextPageToken"] = token
        if reconcile:
            body["reconcileIssues"] = reconcile
        page = api.call("POST", "search/jql", what=what, permission=Permission.BROWSE, body=body)
        issues = list((page or {}).get("issues") or [])
        if issues:
            yield issues
        token = (page or {}).get("nextPageToken")
        if not token or not issues:
            return
        if token in seen:
            raise ConnectorError(f"jira repeated a page token during {what}", system="jira")
        seen.add(token)


def _dc_pages(
    api: JiraApi, jql: str, fields: list[str], what: str
) -> Iterator[list[dict[str, Any]]]:
    start = 0
    while True:
        body = {"jql": jql, "fields": fields, "startAt": start, "maxResults": DC_PAGE}
        page = api.call("POST", "search", what=what, permission=Permission.BROWSE, body=body)
        issues = list((page or {}).get("issues") or [])
        if not issues:
            return
        yield issues
        start += len(issues)
        total = (page or {}).get("total")
        if isinstance(total, int) and start >= total:
            return
