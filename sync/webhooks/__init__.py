"""Authenticated webhooks (`POST /webhooks/jira`, `POST /webhooks/servicenow`) that queue work now.

`receiver` checks and queues a delivery as a `WorkItem`; `auth` holds the signatures, timestamp
window and replay guard; `events` says which events matter and what work each asks for.
Imports `config` only; the daemon's HTTP surface and engine import it.
"""

from __future__ import annotations

from sync.webhooks.receiver import (
    JIRA_PATH,
    SERVICENOW_PATH,
    WebhookReceiver,
    WorkItem,
    sign_jira,
    sign_servicenow,
)

__all__ = [
    "JIRA_PATH",
    "SERVICENOW_PATH",
    "WebhookReceiver",
    "WorkItem",
    "sign_jira",
    "sign_servicenow",
]
