"""Jira Service Management content derived from the estate: the ITSD requests and their SLAs.

Each ITSD request mirrors one estate incident (a deterministic subset): summary, reporter,
assignee, priority, "Affected services", the SLA fields filled from the incident's task_sla
records (resolution -> "Time to resolution", response -> "Time to first response") in the shape
``/rest/servicedeskapi/request/{key}/sla`` returns, and "Satisfaction" where the estate has a
CSAT answer for the incident.

Services: JSM documents no REST listing of its services for API-token clients. The documented
API is the Jira Cloud platform's service registry, ``GET /rest/atlassian-connect/1/service-registry
?serviceIds=<ari>&...`` (1-20 ids, the graph ARIs that "b:" ids encode in base64; answers a JSON
array of ``ServiceRegistry``: ``id`` (the ARI's uuid), ``name``, ``description``,
``organizationId``, ``revision``, ``serviceTier``). The stand-in serves it on the Cloud site's
host; Data Center has no such route (404). Real Cloud allows it to Connect apps only, so a token
client should expect 403 there.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.estate.model import Agreement, Estate, Incident, Service, SlaRecord
from sandbox.jira.directory import (
    FIELD_AFFECTED_SERVICES,
    FIELD_SATISFACTION,
    FIELD_TIME_TO_FIRST_RESPONSE,
    FIELD_TIME_TO_RESOLUTION,
)

__all__ = [
    "REGISTRY_MAX_IDS",
    "REQUESTS_MAX",
    "SLA_METRICS",
    "ServiceRequest",
    "registry_entries",
    "service_id",
    "service_requests",
]

REQUESTS_MAX = 120
REGISTRY_MAX_IDS = 20  # serviceIds per service-registry call (maxItems in the platform spec)
SITE_ID = "5f1d0c2e-7a41-4d8e-9b0e-3c6a2f9d1e77"
# metric -> (SLA metric id, field, name), as JSM names its two default SLAs.
SLA_METRICS = {
    "response": ("1", FIELD_TIME_TO_FIRST_RESPONSE, "Time to first response"),
    "resolution": ("2", FIELD_TIME_TO_RESOLUTION, "Time to resolution"),
}


@dataclass(frozen=True)
class ServiceRequest:
    """What the ITSD seed needs to create one request issue."""

    incident: Incident
    fields: dict[str, Any]
    status_id: str
    created: datetime
    updated: datetime


def service_id(service: Service) -> str:
    """The service's id in JSM: a base64 "b:" id of its graph ARI, stable per sys_id."""
    h = service.sys_id
    ari = f"ari:cloud:graph::service/{SITE_ID}/{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
    return "b:" + base64.b64encode(ari.encode()).decode()


def _date(moment: datetime) -> dict[str, Any]:
    iso = moment.strftime("%Y-%m-%dT%H:%M:%S%z")
    jira = (
        moment.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}"
        + moment.strftime("%z")
    )
    return {
        "iso8601": iso,
        "jira": jira,
        "friendly": moment.strftime("%d/%b/%y %I:%M %p"),
        "epochMillis": int(moment.timestamp() * 1000),
    }


def _duration(span: timedelta) -> dict[str, Any]:
    millis = int(span.total_seconds() * 1000)
    minutes = int(span.total_seconds() // 60)
    return {"millis": millis, "friendly": f"{minutes // 60}h {minutes % 60}m"}


def sla_value(record: SlaRecord, goal: timedelta, now: datetime) -> dict[str, Any]:
    """One SLA in JSM's shape (without id / name / links): completed or ongoing cycle."""
    breach_time = record.start_time + goal
    if record.end_time is not None:
        elapsed = record.end_time - record.start_time
        cycle = {
            "startTime": _date(record.start_time),
            "stopTime": _date(record.end_time),
            "breachTime": _date(breach_time),
            "breached": record.has_breached,
            "goalDuration": _duration(goal),
            "elapsedTime": _duration(elapsed),
            "remainingTime": _duration(goal - elapsed),
        }
        return {"completedCycles": [cycle]}
    elapsed = now - record.start_time
    ongoing = {
        "startTime": _date(record.start_time),
        "breachTime": _date(breach_time),
        "breached": record.has_breached or elapsed > goal,
        "paused": record.stage == "paused",
        "withinCalendarHours": False,
        "goalDuration": _duration(goal),
        "elapsedTime": _duration(elapsed),
        "remainingTime": _duration(goal - elapsed),
    }
    return {"completedCycles": [], "ongoingCycle": ongoing}


def service_requests(estate: Estate, accounts: dict[str, str]) -> list[ServiceRequest]:
    """The ITSD requests: every n-th incident by number, at most ``REQUESTS_MAX``.

    ``accounts`` maps a person's sys_id to their Jira account id (people in Jira only).
    """
    incidents = sorted(estate.incidents, key=lambda i: i.number)
    step = max(1, len(incidents) // REQUESTS_MAX)
    chosen = incidents[::step][:REQUESTS_MAX]
    agreements = {a.sys_id: a for a in estate.agreements}
    records: dict[str, list[SlaRecord]] = {}
    for record in estate.sla_records:
        records.setdefault(record.task, []).append(record)
    ratings = {c.source_id: c.actual_value for c in estate.csat}
    services = {s.sys_id: s for s in estate.services}
    return [
        _request(
            incident,
            records.get(incident.sys_id, []),
            agreements,
            ratings,
            services,
            accounts,
            estate.now,
        )
        for incident in chosen
    ]


def _request(
    incident: Incident,
    records: list[SlaRecord],
    agreements: dict[str, Agreement],
    ratings: dict[str, str],
    services: dict[str, Service],
    accounts: dict[str, str],
    now: datetime,
) -> ServiceRequest:
    service = services.get(incident.business_service)
    fields: dict[str, Any] = {
        "summary": incident.short_description,
        "description": f"Raised from ServiceNow incident {incident.number}.",
        "labels": [f"servicenow-{incident.number.lower()}"],
        "priority": str(min(5, max(1, int(incident.priority))))
        if incident.priority.isdigit()
        else "3",
        "reporter": accounts.get(incident.caller),
        "assignee": accounts.get(incident.assigned_to or ""),
        FIELD_AFFECTED_SERVICES: [service_id(service)] if service else [],
    }
    for record in records:
        agreement = agreements.get(record.sla)
        if agreement is None or agreement.type != "SLA" or agreement.metric not in SLA_METRICS:
            continue
        metric_id, field_id, name = SLA_METRICS[agreement.metric]
        goal = agreement.duration or (record.planned_end_time - record.start_time)
        fields[field_id] = {"id": metric_id, "name": name, **sla_value(record, goal, now)}
    rating = ratings.get(incident.sys_id)
    if rating and rating.isdigit():
        fields[FIELD_SATISFACTION] = {"rating": min(5, max(1, int(rating)))}
    status = "10001" if incident.resolved_at else ("3" if incident.assigned_to else "10000")
    return ServiceRequest(incident, fields, status, incident.opened_at, incident.sys_updated_on)


def registry_entries(estate: Estate, service_ids: list[str]) -> list[dict[str, Any]]:
    """The service registry's entries for these ARIs, in the order asked (unknown ones left out)."""
    by_ari = {_ari(s): s for s in estate.services}
    return [_registry_entry(by_ari[i]) for i in dict.fromkeys(service_ids) if i in by_ari]


def _ari(service: Service) -> str:
    return base64.b64decode(service_id(service)[2:]).decode()


def _registry_entry(service: Service) -> dict[str, Any]:
    uuid = _ari(service).rsplit("/", 1)[-1]
    tier = service.tier
    return {
        "id": uuid,
        "name": service.name,
        "description": f"{service.name} ({service.number})",
        "organizationId": SITE_ID,
        "revision": "1",
        "serviceTier": {
            "id": f"00000000-0000-4000-8000-00000000000{tier}",
            "level": tier,
            "name": None,
            "nameKey": f"service-registry.tier{tier}.name",
            "description": None,
        },
    }
