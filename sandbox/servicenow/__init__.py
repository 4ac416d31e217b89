"""The ServiceNow stand-in: Table, Aggregate and Attachment APIs over the seeded estate.

`app` routes requests; `listing` pages rows selected by `query` (encoded queries) from the
`store`, seeded by `seed` with the stock schema of `tables`; `render` shapes rows per
`sysparm_display_value`; `aggregate` answers `/api/now/stats`. Imports only `sandbox.http` and
`sandbox.estate`.
"""

from __future__ import annotations

from sandbox.servicenow.app import ServiceNowApp

__all__ = ["ServiceNowApp"]
