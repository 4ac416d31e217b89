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

from config import JiraSettings, Settings
from connectors.base import Cursor, Page, RawRecord, Stream
from connectors.errors import FatalError, RequestRejected
from connectors.jira import jsm
from connectors.jira.client import JiraApi, JiraClient, Permission
from connectors.jira.jql import jql_time, quote
from connectors.jira.search import search

SERVICES_PAGE = 50
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

    def read(
        self, stream: Stream, *, since: Cursor | None = None, until: datetime | None = None
    ) -> Iterator[Page]:
        reader = _PER_REQUEST.get(stream)
        if reader is not None:
            return self._requests(stream, reader, since, until)
        if stream is Stream.SERVICES:
            return iter([Page(stream, self.services(), None)])
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
            clauses.append(f"updated >= {jql_time(start)}")
        if until is not None:
            clauses.append(f"updated <= {jql_time(until + timedelta(minutes=1))}")
        return " AND ".join(clauses) + " ORDER BY updated ASC, key ASC"

    # ---- services and people -----------------------------------------------------------------
    def services(self) -> list[RawRecord]:
        """Configured services, else the JSM services listing, else those requests name."""
        if self.settings.services:
            return [_service(i, n) for i, n in self.settings.services.items()]
        if self.settings.cloud_id and self.api.deployment.value == "cloud":
            return [self._listed(row) for row in self._listing()]
        named: dict[str, str] = {}
        for issues in search(self.api, self._jql(None, None), [self.fields.service or "summary"]):
            for issue in issues:
                service_id, name = jsm.service_of(issue, self.fields)
                if service_id:
                    named.setdefault(service_id, name or service_id)
        return [_service(i, n) for i, n in named.items()]

    def _listing(self) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.api.call(
                "GET",
                f"/jsm/api/{self.settings.cloud_id}/v1/services",
                what="JSM services listing",
                permission=Permission.BROWSE,
                params={"offset": offset, "size": SERVICES_PAGE},
            )
            rows = list((page or {}).get("services") or [])
            yield from rows
            offset += len(rows)
            if not rows or not ((page or {}).get("pagination") or {}).get("hasNext"):
                return

    def _listed(self, row: Mapping[str, Any]) -> RawRecord:
        owner = self._user(str(row["owner"])) if row.get("owner") else None
        record = _service(str(row["id"]), str(row.get("name", "")), row.get("tier"))
        if owner:
            record.update(
                owner_account_id=owner.get("accountId"),
                owner_email=owner.get("emailAddress"),
                owner_name=owner.get("displayName"),
            )
        return record

    def people(self) -> list[RawRecord]:
        """Users named as service owners or stakeholders in the services listing."""
        if not (self.settings.cloud_id and self.api.deployment.value == "cloud"):
            return []
        ids: dict[str, None] = {}
        for row in self._listing():
            for account in [
                row.get("owner"),
                *((row.get("stakeholders") or {}).get("users") or []),
            ]:
                if account:
                    ids[str(account)] = None
        return [user for user in (self._user(account) for account in ids) if user]

    def _user(self, account_id: str) -> dict[str, Any] | None:
        cache: dict[str, dict[str, Any] | None] = self.__dict__.setdefault("_users", {})
        if account_id not in cache:
            try:
                cache[account_id] = self.api.call(
                    "GET",
                    "user",
                    what=f"user {account_id}",
                    permission=Permission.USERS,
                    params={"accountId": account_id},
                )
            except RequestRejected:
                cache[account_id] = None
        return cache[account_id]


def _service(service_id: str, name: str, tier: Any = None) -> dict[str, Any]:
    return {
        "id": service_id,
        "name": name,
        "tier": int(tier) if isinstance(tier, int | str) and str(tier).isdigit() else None,
        "owner_account_id": None,
        "owner_email": None,
        "owner_name": None,
    }


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
