"""The Jira stand-in: Cloud (REST v3 + v2) and Data Center (REST v2) flavours with JSM.

`app` routes requests to `issues` (writes), `search` (paged reads, `jql`) and `meta` (site
metadata), all working on one `site` (`directory`, `store` and search index, `jsm`), rendered by
`render` and `adf`. Imports only `sandbox.http` (the harness) and `sandbox.estate` (the data).
"""

from __future__ import annotations

from sandbox.jira.app import JiraApp
from sandbox.jira.directory import PERSON_PASSWORD

__all__ = ["PERSON_PASSWORD", "JiraApp"]
