"""Authenticated webhooks (`POST /webhooks/jira`, `POST /webhooks/servicenow`) that queue work now.

`receiver` checks and queues a delivery as a `WorkItem`; `auth` holds the content type, the
signatures and the replay guard; `throttle` rate-limits rejection log lines; `events` says which
events matter and what work each asks for. `REJECTIONS` names the outcomes that refuse a request
(the `reason` label of the rejection counter in `sync.metrics`).
Imports `config` only; the daemon's HTTP surface and engine import it.
"""

from __future__ import annotations

from sync.webhooks.receiver import (
    JIRA_PATH,
    REJECTIONS,
    SERVICENOW_PATH,
    Observer,
    WebhookReceiver,
    WorkItem,
    sign_jira,
    sign_servicenow,
)

__all__ = [
    "JIRA_PATH",
    "REJECTIONS",
    "SERVICENOW_PATH",
    "Observer",
    "WebhookReceiver",
    "WorkItem",
    "sign_jira",
    "sign_servicenow",
]
