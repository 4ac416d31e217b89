"""Which webhook events matter, and what work each one asks for.

Jira: `jira:issue_updated` on one of our tickets (it carries the sync label, or just lost it)
whose changelog changed something (a transition, labels, any field) asks to re-read that ticket's
cycle or review. Comment-only and worklog updates carry no changelog and are ignored.
ServiceNow: our business rules send `task_sla.breached` and `service.changed`, each naming the
service's sys_id. A breach names its `task_sla` record too (`"table": "task_sla"` with
`"record": <sys_id>`, or `"task_sla": <sys_id>`): it asks to read exactly that record and
rebuild its service's review; a breach without one (an older business rule) and a service
change ask to re-read that service.
An event that does not matter is not an error: the sender gets 200 and nothing is queued.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

JIRA_ISSUE_UPDATED = "jira:issue_updated"
SERVICENOW_EVENTS = ("task_sla.breached", "service.changed")
_SYS_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class WorkItem:
    """One unit of work a webhook asks for: re-read this ticket, service or SLA record now."""

    source: Literal["jira", "servicenow"]
    kind: Literal["ticket", "service", "sla_record"]
    # Jira issue key (ticket), ServiceNow service sys_id (service), task_sla sys_id (sla_record)
    key: str
    received_at: float
    event: str = ""
    service: str = ""  # an sla_record's service sys_id (as the sender named it)


class Ignored(Exception):
    """The event is authentic but asks for nothing (not ours, or nothing relevant changed)."""


class Malformed(Exception):
    """The event is authentic but not shaped as documented (a sender misconfiguration)."""


def jira_work(payload: Mapping[str, Any], *, label: str, received_at: float) -> WorkItem:
    """The work a Jira webhook event asks for; raises Ignored or Malformed otherwise."""
    event = payload.get("webhookEvent")
    if event != JIRA_ISSUE_UPDATED:
        raise Ignored(f"event {event!r} is not {JIRA_ISSUE_UPDATED}")
    issue = payload.get("issue")
    if not isinstance(issue, Mapping) or not isinstance(issue.get("key"), str):
        raise Malformed("jira:issue_updated without issue.key")
    key = str(issue["key"])
    changed = _changed_fields(payload)
    if not changed:
        raise Ignored(f"{key}: no field changed (comment or worklog only)")
    if not _is_ours(issue, payload, label):
        raise Ignored(f"{key}: not labelled {label!r}")
    what = "transitioned" if "status" in changed else ",".join(sorted(changed))
    return WorkItem("jira", "ticket", key, received_at, event=f"{event}:{what}")


def jira_timestamp_seconds(payload: Mapping[str, Any]) -> float | None:
    """The event's `timestamp` (epoch milliseconds in Jira payloads) in seconds."""
    value = payload.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) / 1000.0


def servicenow_work(payload: Mapping[str, Any], *, received_at: float) -> WorkItem:
    """The work a ServiceNow business-rule event asks for; raises Ignored or Malformed."""
    event = payload.get("event")
    if event not in SERVICENOW_EVENTS:
        raise Ignored(f"event {event!r} is not one of {', '.join(SERVICENOW_EVENTS)}")
    service = payload.get("service")
    if not isinstance(service, str) or not _SYS_ID.match(service):
        raise Malformed(f"{event} without a service sys_id (32 hex characters) in 'service'")
    record = _sla_record(payload) if event == "task_sla.breached" else None
    if record is None:
        return WorkItem("servicenow", "service", service, received_at, event=str(event))
    return WorkItem(
        "servicenow", "sla_record", record, received_at, event=str(event), service=service
    )


def _sla_record(payload: Mapping[str, Any]) -> str | None:
    """The task_sla sys_id a breach names ('task_sla', or 'record' of 'table' task_sla)."""
    named = payload.get("task_sla")
    if named is None:
        # What earlier business rules sent for the log only: used when it is a sys_id, the
        # service otherwise (those deliveries were accepted before and still are).
        record = payload.get("record")
        if payload.get("table") == "task_sla" and isinstance(record, str):
            return record if _SYS_ID.match(record) else None
        return None
    if not isinstance(named, str) or not _SYS_ID.match(named):
        raise Malformed("task_sla.breached with a 'task_sla' that is not a sys_id (32 hex)")
    return named


def _changed_fields(payload: Mapping[str, Any]) -> set[str]:
    changelog = payload.get("changelog")
    items = changelog.get("items") if isinstance(changelog, Mapping) else None
    if not isinstance(items, list):
        return set()
    return {str(i.get("field")) for i in items if isinstance(i, Mapping) and i.get("field")}


def _is_ours(issue: Mapping[str, Any], payload: Mapping[str, Any], label: str) -> bool:
    fields = issue.get("fields")
    labels = fields.get("labels") if isinstance(fields, Mapping) else None
    if isinstance(labels, list) and label in labels:
        return True
    # Someone removed our label: still our ticket, and exactly the change to re-read.
    return any(label in _removed_labels(item) for item in _label_items(payload))


def _label_items(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    changelog = payload.get("changelog")
    items = changelog.get("items") if isinstance(changelog, Mapping) else None
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, Mapping) and i.get("field") == "labels"]


def _removed_labels(item: Mapping[str, Any]) -> set[str]:
    # Jira writes label changes as space-separated strings: fromString "a b", toString "a".
    before = str(item.get("fromString") or "").split()
    after = str(item.get("toString") or "").split()
    return set(before) - set(after)
