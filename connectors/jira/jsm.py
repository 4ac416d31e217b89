"""JSM requests as raw records: SLA cycles, agreements (SLA goals JSM reports) and CSAT.

Pure functions over one request's JSON as search returns it (fields asked for explicitly); the
shapes are the ones `config/mappings/jira.yaml` maps (mapping/README.md, "Raw records").

JSM has no agreement object to read: an SLA (a field such as "Time to resolution") holds goals
chosen per request by JQL conditions (usually the priority), and each cycle reports the goal it
was measured against (`goalDuration`). So one agreement is derived per (service, SLA field,
priority, goal) that cycles report; its key names all four, so the same SLA on two services or
two priorities is two agreements with their own attainment. The calendar is not named in the
field data (only an ongoing cycle's `withinCalendarHours`); JSM's `elapsedTime` and `breached`
already count calendar hours only, so attainment uses them as reported.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

SLA_FIELD_TYPE = "com.atlassian.servicedesk:sd-sla-field"
FEEDBACK_FIELD_TYPE = "com.atlassian.servicedesk:sd-request-feedback"


# Where each raw record key comes from on the site: a Jira field (a system field id, or SLA /
# SERVICE / SATISFACTION: the SLA fields, `jira.service_field`, the CSAT field), or None when
# the connector makes it (ids, derived values). `doctor` checks a mapping's sources against it.
SLA, SERVICE, SATISFACTION = "<sla fields>", "<service field>", "<satisfaction field>"
_CYCLE = ("goal_ms", "elapsed_ms", "breached", "start", "stop", "cycle", "sla_name", "field_id")
RAW_SOURCES: dict[str, dict[str, str | None]] = {
    "service": {
        "id": SERVICE,
        "name": SERVICE,
        "tier": None,
        "owner_account_id": None,
        "owner_email": None,
        "owner_name": None,
    },
    "agreement": {
        **dict.fromkeys(("key", "name", "field_id", "field_name", "goal_ms", "metric"), SLA),
        "priority": "priority",
        "service_id": SERVICE,
    },
    "sla_record": {
        **dict.fromkeys(_CYCLE, SLA),
        "key": None,
        "issue_key": None,
        "agreement_key": SLA,
        "priority": "priority",
        "service_id": SERVICE,
        "updated": "updated",
    },
    "csat_response": {
        "key": None,
        "issue_key": None,
        "rating": SATISFACTION,
        "service_id": SERVICE,
        "updated": "updated",
    },
}


@dataclass(frozen=True)
class JsmFields:
    """Field ids of the site: SLA fields (id -> name), the service field, the CSAT field."""

    sla: Mapping[str, str]
    service: str | None
    satisfaction: str | None

    @classmethod
    def discover(
        cls, fields: list[dict[str, Any]], service: str, satisfaction: str | None
    ) -> JsmFields:
        sla = {
            str(f["id"]): str(f.get("name", f["id"]))
            for f in fields
            if (f.get("schema") or {}).get("custom") == SLA_FIELD_TYPE
        }
        feedback = next(
            (f for f in fields if (f.get("schema") or {}).get("custom") == FEEDBACK_FIELD_TYPE),
            None,
        )
        csat = _field_id(fields, satisfaction) if satisfaction else None
        if csat is None and feedback is not None:
            csat = str(feedback["id"])
        return cls(sla, _field_id(fields, service), csat)

    def search_fields(self) -> list[str]:
        extra = [f for f in (self.service, self.satisfaction) if f]
        return [*self.sla, *extra, "priority", "updated"]


def _field_id(fields: list[dict[str, Any]], wanted: str) -> str | None:
    for field in fields:
        if wanted in {field.get("id"), field.get("name"), field.get("key")}:
            return str(field["id"])
    return None


def service_of(issue: Mapping[str, Any], jsm: JsmFields) -> tuple[str, str]:
    """(id, name) of the request's first affected service, or ("", "")."""
    value = issue["fields"].get(jsm.service) if jsm.service else None
    first = value[0] if isinstance(value, list) and value else value
    if isinstance(first, dict):
        return str(first.get("id", "")), str(first.get("name") or first.get("value") or "")
    return (str(first), "") if first else ("", "")


def agreement_key(field_id: str, goal_ms: int, priority: str | None, service_id: str | None) -> str:
    """`<field>:<goal ms>:<priority>:<service>`: one agreement per SLA goal, priority, service.

    The priority is %-escaped ("-" when none) and the service id comes last, so ids holding
    ":" or "=" (JSM's base64 "b:" ids) cannot make two agreements share a key.
    """
    return ":".join((field_id, str(goal_ms), quote(priority or "-", safe=""), service_id or ""))


def goal_text(goal_ms: int) -> str:
    """A goal as people write it: "4h", "30m", "1h 30m", "2d"."""
    minutes = round(goal_ms / 60_000)
    if minutes and minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}d"
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours}h {rest}m"
    return f"{hours}h" if hours else f"{rest}m"


def registry_id(service_id: str) -> str:
    """The id the service registry takes: "b:" ids decoded from base64 (their graph ARI)."""
    if service_id.startswith("b:"):
        try:
            return base64.b64decode(service_id[2:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return service_id
    return service_id


def registry_uuid(service_id: str) -> str:
    """The uuid the registry answers with: the last segment of the service's ARI."""
    return registry_id(service_id).rsplit("/", 1)[-1]


def metric_of(field_name: str) -> str:
    """JSM names its SLAs; "first response" ones measure response, the rest resolution."""
    return "response" if "first response" in field_name.lower() else "resolution"


def _moment(value: Any) -> Any:
    """A JSM date object as Jira's timestamp string (or epoch ms when that is all there is)."""
    if isinstance(value, dict):
        return value.get("jira") or value.get("iso8601") or value.get("epochMillis")
    return value


def _millis(value: Any) -> int | None:
    if isinstance(value, dict) and value.get("millis") is not None:
        return int(value["millis"])
    return None


def sla_cycles(issue: Mapping[str, Any], jsm: JsmFields) -> Iterator[dict[str, Any]]:
    """One raw sla_record per completed and ongoing cycle of each SLA field of the request."""
    key = str(issue["key"])
    fields = issue["fields"]
    service_id = service_of(issue, jsm)[0] or None
    priority = (fields.get("priority") or {}).get("name")
    for field_id in jsm.sla:
        value = fields.get(field_id)
        if not isinstance(value, dict):
            continue
        cycles = [("completed", c) for c in value.get("completedCycles") or []]
        if isinstance(value.get("ongoingCycle"), dict):
            cycles.append(("ongoing", value["ongoingCycle"]))
        for number, (kind, cycle) in enumerate(cycles):
            goal = _millis(cycle.get("goalDuration"))
            yield {
                "key": f"{key}:{field_id}:{number}",
                "issue_key": key,
                "field_id": field_id,
                "sla_name": str(value.get("name") or jsm.sla[field_id]),
                "agreement_key": (
                    agreement_key(field_id, goal, priority, service_id)
                    if goal is not None
                    else None
                ),
                "cycle": kind,
                "goal_ms": goal,
                "elapsed_ms": _millis(cycle.get("elapsedTime")),
                "breached": bool(cycle.get("breached")),
                "start": _moment(cycle.get("startTime")),
                "stop": _moment(cycle.get("stopTime")),
                "priority": priority,
                "service_id": service_id,
                "updated": fields.get("updated"),
            }


def agreements(issue: Mapping[str, Any], jsm: JsmFields) -> Iterator[dict[str, Any]]:
    """One raw agreement per (SLA field, goal, priority, service) the request's cycles report."""
    for cycle in sla_cycles(issue, jsm):
        goal = cycle["goal_ms"]
        if goal is None:
            continue
        name = cycle["sla_name"]
        priority = cycle["priority"]
        label = (
            f"{name} ({priority}) {goal_text(goal)}" if priority else f"{name} {goal_text(goal)}"
        )
        yield {
            "key": cycle["agreement_key"],
            "name": label,
            "field_id": cycle["field_id"],
            "field_name": jsm.sla[cycle["field_id"]],
            "goal_ms": goal,
            "metric": metric_of(name),
            "priority": priority,
            "service_id": cycle["service_id"],
        }


def csat(issue: Mapping[str, Any], jsm: JsmFields) -> dict[str, Any] | None:
    """The request's satisfaction rating as a raw csat_response, or None if unrated."""
    value = issue["fields"].get(jsm.satisfaction) if jsm.satisfaction else None
    rating = value.get("rating") if isinstance(value, dict) else None
    if rating is None:
        return None
    key = str(issue["key"])
    return {
        "key": key,
        "issue_key": key,
        "rating": int(rating),
        "service_id": service_of(issue, jsm)[0] or None,
        "updated": issue["fields"].get("updated"),
    }
