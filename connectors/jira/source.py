"""Jira Service Management as a source: requests with their SLA fields, services, CSAT.

Requests are read by JQL search with an explicit field list (no call per request), ordered by
`updated, key`. Incremental reads start `jira.overlap_seconds` before the cursor (JQL has minute
resolution and the index lags) and skip nothing they find, de-duplicating by (key, updated)
within a read: an update is never lost, at the price of re-reading the overlap. Records updated
after `until` (the run's start) are left for the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from config import JiraSettings, Settings
from connectors.base import Cursor, Page, RawRecord, ReadError, Stream
from connectors.errors import AuthError, ConnectorError, FatalError
from connectors.jira import jsm
from connectors.jira.client import JiraApi, JiraClient, Permission
from connectors.jira.jql import jql_time, quote
from connectors.jira.links import site_url, source_url
from connectors.jira.search import search
from review import SourceRef

REGISTRY_PATH = "/rest/atlassian-connect/1/service-registry"
REGISTRY_BATCH = 20  # serviceIds per call (maxItems in the platform spec)
log = structlog.get_logger("slm_sync.jira.source")
RequestReader = Callable[[Mapping[str, Any], jsm.JsmFields], list[dict[str, Any]]]
_PER_REQUEST: dict[Stream, RequestReader] = {
    Stream.SLA_RECORDS: lambda issue, f: list(jsm.sla_cycles(issue, f)),
    Stream.AGREEMENTS: lambda issue, f: list(jsm.agreements(issue, f)),
    Stream.CSAT: lambda issue, f: [r for r in [jsm.csat(issue, f)] if r],
}


def parse_jira_time(value: str) -> datetime:
    """Jira's "2025-01-02T10:00:00.000+0000" (or ISO 8601) as an aware datetime."""
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class JiraSource:
    """`SourceConnector` for JSM: services, people, agreements, SLA records and CSAT."""

    system = "jira"

    def __init__(self, api: JiraApi, settings: JiraSettings) -> None:
        self.api = api
        self.settings = settings
        self._fields: jsm.JsmFields | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> JiraSource:
        return cls(JiraClient.connect(settings.jira, settings.http), settings.jira)

    @property
    def fields(self) -> jsm.JsmFields:
        if self._fields is None:
            listed = self.api.call("GET", "field", what="field list", permission=Permission.BROWSE)
            self._fields = jsm.JsmFields.discover(
                list(listed or []), self.settings.service_field, self.settings.satisfaction_field
            )
        return self._fields

    def record_url(self, ref: SourceRef) -> str | None:
        """The request a record read from here belongs to (`jira.public_url` behind a proxy)."""
        return source_url(site_url(self.settings, self.api.base_url), ref)

    def read(
        self, stream: Stream, *, since: Cursor | None = None, until: datetime | None = None
    ) -> Iterator[Page]:
        reader = _PER_REQUEST.get(stream)
        if reader is not None:
            return self._requests(stream, reader, since, until)
        if stream is Stream.SERVICES:
            return iter([self.services()])
        if stream is Stream.PEOPLE:
            return iter([Page(stream, self.people(), None)])
        return iter(())  # components, relations, materials: none from Jira in this version

    # ---- requests ----------------------------------------------------------------------------
    def _requests(
        self,
        stream: Stream,
        reader: RequestReader,
        since: Cursor | None,
        until: datetime | None,
    ) -> Iterator[Page]:
        seen: set[tuple[str, str]] = set()
        emitted: set[str] = set()
        cursor = since
        for issues in search(self.api, self._jql(since, until), self.fields.search_fields()):
            records: list[RawRecord] = []
            for issue in issues:
                updated = str(issue["fields"].get("updated") or "")
                if (issue["key"], updated) in seen or _after(updated, until):
                    continue
                seen.add((issue["key"], updated))
                for record in reader(issue, self.fields):
                    if record["key"] not in emitted:  # agreements repeat across requests
                        emitted.add(record["key"])
                        records.append(record)
                cursor = _later(cursor, Cursor(_iso(updated), str(issue["key"])))
            yield Page(stream, records, cursor)

    def _jql(self, since: Cursor | None, until: datetime | None) -> str:
        if not self.settings.jsm_project:
            raise FatalError(
                "jira.jsm_project is not set",
                system="jira",
                hint="set jira.jsm_project to the JSM project key that holds the requests",
            )
        clauses = [f"project = {quote(self.settings.jsm_project)}"]
        if since is not None and since.updated:
            start = parse_jira_time(since.updated) - timedelta(
                seconds=self.settings.overlap_seconds
            )
            clauses.append(f"updated >= {jql_time(start, self.api.time_zone)}")
        if until is not None:
            later = until + timedelta(minutes=1)
            clauses.append(f"updated <= {jql_time(later, self.api.time_zone)}")
        return " AND ".join(clauses) + " ORDER BY updated ASC, key ASC"

    # ---- services and people -----------------------------------------------------------------
    def services(self) -> Page:
        """Configured services, else those requests name, with the registry's name and tier.

        JSM documents no REST listing of its services that an API token may call: services
        are the ones requests name in the service field, detailed (name, tier) by the
        documented service registry (`/rest/atlassian-connect/1/service-registry`, Cloud).
        The registry is optional: when it fails, the names on the requests stand and the page
        carries the failure, which becomes a gap in every pack; the run goes on.
        """
        if self.settings.services:
            records = [_service(i, n) for i, n in self.settings.services.items()]
            return Page(Stream.SERVICES, records, None)
        named = self._named_on_requests()
        if self.api.deployment.value != "cloud" or not named:
            return Page(Stream.SERVICES, [_service(i, n) for i, n in named.items()], None)
        try:
            details = self._registry(list(named))
        except AuthError as error:  # the registry is for Connect apps: a token may be refused
            return self._without_registry(named, error)
        except FatalError:
            raise
        except ConnectorError as error:
            return self._without_registry(named, error)
        records = [
            _service(i, str(details.get(i, {}).get("name") or n), _tier(details.get(i)))
            for i, n in named.items()
        ]
        return Page(Stream.SERVICES, records, None)

    def _named_on_requests(self) -> dict[str, str]:
        """Service id -> name of every service the JSM project's requests name."""
        named: dict[str, str] = {}
        for issues in search(self.api, self._jql(None, None), [self.fields.service or "summary"]):
            for issue in issues:
                service_id, name = jsm.service_of(issue, self.fields)
                if service_id and not named.get(service_id):
                    named[service_id] = name or service_id
        return named

    def _registry(self, service_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Service id -> the registry's entry, asked 20 ids at a time (the API's limit)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(service_ids), REGISTRY_BATCH):
            batch = service_ids[start : start + REGISTRY_BATCH]
            by_uuid = {jsm.registry_uuid(i): i for i in batch}
            rows = self.api.call(
                "GET",
                REGISTRY_PATH,
                what="JSM service registry",
                permission=Permission.BROWSE,
                params={"serviceIds": [jsm.registry_id(i) for i in batch]},
            )
            for row in rows or []:
                service_id = by_uuid.get(str(row.get("id", "")))
                if service_id:
                    found[service_id] = dict(row)
        return found

    def _without_registry(self, named: dict[str, str], error: ConnectorError) -> Page:
        log.warning(
            "jsm.service_registry_failed",
            status=error.status,
            error=str(error),
            services=len(named),
        )
        gap = (
            f"the JSM service registry could not be read ({_status(error)}): services are "
            "the ones requests name, with the names shown on them and no tier; name them under "
            "jira.services in the settings, or let the integration user read the registry"
        )
        records = [_service(i, n) for i, n in named.items()]
        errors = tuple(ReadError(REGISTRY_PATH, i, gap, (i,)) for i in named) or (gap,)
        return Page(Stream.SERVICES, records, None, errors=errors)

    def people(self) -> list[RawRecord]:
        """No JSM API an integration can call names service owners: none are read."""
        return []


def _service(service_id: str, name: str, tier: Any = None) -> dict[str, Any]:
    return {
        "id": service_id,
        "name": name,
        "tier": int(tier) if isinstance(tier, int | str) and str(tier).isdigit() else None,
        "owner_account_id": None,
        "owner_email": None,
        "owner_name": None,
    }


def _tier(entry: Mapping[str, Any] | None) -> int | None:
    level = ((entry or {}).get("serviceTier") or {}).get("level")
    return level if isinstance(level, int) else None


def _status(error: ConnectorError) -> str:
    return f"HTTP {error.status}" if error.status else type(error).__name__


def _iso(updated: str) -> str:
    return parse_jira_time(updated).astimezone(UTC).isoformat() if updated else ""


def _after(updated: str, until: datetime | None) -> bool:
    return bool(until and updated and parse_jira_time(updated) > until)


def _later(current: Cursor | None, candidate: Cursor) -> Cursor:
    if current is None or not current.updated:
        return candidate
    if (parse_jira_time(candidate.updated), candidate.id) > (
        parse_jira_time(current.updated),
        current.id,
    ):
        return candidate
    return current
