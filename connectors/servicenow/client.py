"""The Table and Attachment API seam: a small `TableClient` Protocol and its pysnow implementation.

pysnow is in maintenance only, so the rest of the connector talks to `TableClient`; tests swap
it for fakes and pysnow can be replaced without touching paging or writes. Every call sends
explicit `sysparm_fields`, `sysparm_exclude_reference_link=true`, `sysparm_no_count=true` and
`sysparm_suppress_pagination_header=true` (we page by keyset, never by `Link`), with the
(connect, read) timeouts of `http:` settings, and maps failures to `connectors.errors`.
`PysnowTableClient.batch_list` sends several list reads in one REST Batch API call (`batch`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import pysnow
import requests
import structlog

from connectors.errors import ConnectorError, TransientError
from connectors.http import raise_for_response, transport_error, unreadable_body

if TYPE_CHECKING:
    from connectors.servicenow.batch import BatchAnswer, ListRequest

SYSTEM = "servicenow"
# What an integration user usually lacks when the instance answers 401/403 for a table.
ROLE_HINTS: Mapping[str, str] = {
    "cmdb_ci": "cmdb_read",
    "cmdb_ci_service": "cmdb_read",
    "cmdb_rel_ci": "cmdb_read",
    "contract_sla": "sla_admin or itil (read on contract_sla)",
    "task_sla": "itil",
    "asmt_metric_result": "assessment_reader or survey_reader",
    "sys_user": "itil (read on sys_user)",
    "kb_knowledge": "knowledge",
    "problem": "itil",
    "incident": "itil",
    "sys_journal_field": "admin, or a read ACL on sys_journal_field for its role",
}

Record = dict[str, Any]
log = structlog.get_logger("slm_sync.servicenow")
RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Rule",
)


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The instance's rate-limit headers present in a response, for logs."""
    return {name: headers[name] for name in RATE_HEADERS if name in headers}


@dataclass(frozen=True)
class TableResult:
    """Records of one response (one for single-record calls) and its headers."""

    records: list[Record]
    headers: Mapping[str, str] = field(default_factory=dict)


class TableClient(Protocol):
    """One method per Table / Attachment API call the connector makes."""

    def list(self, table: str, *, query: str, fields: Sequence[str], limit: int) -> TableResult:
        """GET /api/now/table/{table}: one page of matching rows."""
        ...

    def get(self, table: str, sys_id: str, *, fields: Sequence[str]) -> TableResult:
        """GET /api/now/table/{table}/{sys_id}."""
        ...

    def create(
        self, table: str, payload: Mapping[str, str], *, fields: Sequence[str]
    ) -> TableResult:
        """POST /api/now/table/{table}: insert one record."""
        ...

    def patch(
        self, table: str, sys_id: str, payload: Mapping[str, str], *, fields: Sequence[str]
    ) -> TableResult:
        """PATCH /api/now/table/{table}/{sys_id}: change only the given fields."""
        ...

    def upload(
        self, table: str, sys_id: str, filename: str, content: bytes, content_type: str
    ) -> TableResult:
        """POST /api/now/attachment/file: attach a file to a record."""
        ...

    def attachments(self, table: str, sys_id: str, file_name: str) -> TableResult:
        """GET /api/now/attachment: the record's attachments named `file_name`."""
        ...

    def download(self, attachment_sys_id: str) -> bytes:
        """GET /api/now/attachment/{sys_id}/file: an attachment's bytes."""
        ...

    def delete_attachment(self, attachment_sys_id: str) -> None:
        """DELETE /api/now/attachment/{sys_id}."""
        ...

    def journal(self, table: str, sys_id: str, field: str) -> str:
        """A record's journal field (work notes) as its display value: every entry's text."""
        ...


def auth_hint(table: str) -> str:
    """The roles usually missing when `table` answers 401/403."""
    role = ROLE_HINTS.get(table, "read access (ACL) on the table")
    return (
        f"check the credentials (servicenow.username / password / oauth_token) and give the "
        f"integration user the role {role} for table {table}"
    )


class PysnowTableClient:
    """`TableClient` on pysnow; one pysnow Resource per call (its parameters are shared state)."""

    def __init__(
        self, base_url: str, session: requests.Session, timeout: tuple[float, float]
    ) -> None:
        parts = urlsplit(base_url)
        host = parts.netloc + parts.path.rstrip("/")
        self._client = pysnow.Client(host=host, use_ssl=parts.scheme != "http", session=session)
        # pysnow overwrites the User-Agent with its own; keep ours for the instance's logs.
        session.headers["User-Agent"] = "slm-sync"
        self._timeout = timeout

    def _resource(self, api_path: str, fields: Sequence[str]) -> Any:
        resource = self._client.resource(api_path=api_path, timeout=self._timeout)
        resource.parameters.fields = list(fields)
        # Custom params win over pysnow's own (it would send "False"/"True" and an offset).
        resource.parameters.add_custom(
            {
                "sysparm_display_value": "false",
                "sysparm_exclude_reference_link": "true",
                "sysparm_no_count": "true",
                "sysparm_suppress_pagination_header": "true",
            }
        )
        return resource

    def list(self, table: str, *, query: str, fields: Sequence[str], limit: int) -> TableResult:
        resource = self._resource(f"/table/{table}", fields)
        return _call(
            lambda: resource.get(query=query, limit=limit, fields=list(fields)),
            what=f"table {table}",
            table=table,
        )

    # pysnow sends its whole parameter set (sysparm_limit, sysparm_query ...) on every call,
    # which the Table API spec lists for GET lists only; single-record calls and writes go
    # through pysnow's session with exactly the documented parameters instead.

    def get(self, table: str, sys_id: str, *, fields: Sequence[str]) -> TableResult:
        return self._direct(
            "GET",
            f"/table/{table}/{sys_id}",
            _read_params(fields),
            what=f"{table} record {sys_id}",
            table=table,
        )

    def create(
        self, table: str, payload: Mapping[str, str], *, fields: Sequence[str]
    ) -> TableResult:
        return self._direct(
            "POST",
            f"/table/{table}",
            _read_params(fields),
            what=f"new {table} record",
            table=table,
            json=dict(payload),
        )

    def patch(
        self, table: str, sys_id: str, payload: Mapping[str, str], *, fields: Sequence[str]
    ) -> TableResult:
        params = {"sysparm_fields": ",".join(fields), "sysparm_display_value": "false"}
        return self._direct(
            "PATCH",
            f"/table/{table}/{sys_id}",
            params,
            what=f"{table} record {sys_id}",
            table=table,
            json=dict(payload),
        )

    def upload(
        self, table: str, sys_id: str, filename: str, content: bytes, content_type: str
    ) -> TableResult:
        params = {"table_name": table, "table_sys_id": sys_id, "file_name": filename}
        return self._direct(
            "POST",
            "/attachment/file",
            params,
            what=f"attachment {filename} on {table} {sys_id}",
            table=table,
            data=content,
            headers={"Content-Type": content_type},
        )

    def attachments(self, table: str, sys_id: str, file_name: str) -> TableResult:
        query = f"table_name={table}^table_sys_id={sys_id}^file_name={file_name}"
        return self._direct(
            "GET",
            "/attachment",
            {"sysparm_query": query, "sysparm_limit": "100"},
            what=f"attachments of {table} {sys_id}",
            table="sys_attachment",
        )

    def download(self, attachment_sys_id: str) -> bytes:
        session: requests.Session = self._client.session
        url = f"{self._client.base_url}/api/now/attachment/{attachment_sys_id}/file"
        what = f"attachment {attachment_sys_id}"
        try:
            response = session.get(url, timeout=self._timeout, headers={"Accept": "*/*"})
        except requests.RequestException as error:
            raise transport_error(error, system=SYSTEM, what=what) from error
        raise_for_table(response, what=what, table="sys_attachment")
        return bytes(response.content)

    def delete_attachment(self, attachment_sys_id: str) -> None:
        session: requests.Session = self._client.session
        url = f"{self._client.base_url}/api/now/attachment/{attachment_sys_id}"
        what = f"attachment {attachment_sys_id}"
        try:
            response = session.delete(url, timeout=self._timeout)
        except requests.RequestException as error:
            raise transport_error(error, system=SYSTEM, what=what) from error
        raise_for_table(response, what=what, table="sys_attachment")

    def batch_list(self, asked: Sequence[ListRequest]) -> BatchAnswer:
        """POST /api/now/v1/batch: several `list` pages in one call (see `batch`)."""
        from connectors.servicenow.batch import send_batch  # batch builds on this module

        return send_batch(self._client.session, self._client.base_url, asked, self._timeout)

    def journal(self, table: str, sys_id: str, field: str) -> str:
        # The Table API reads a journal field as "" by value and as its entries by display value.
        params = {"sysparm_fields": field, "sysparm_display_value": "true"}
        what = f"{field} of {table} record {sys_id}"
        result = self._direct("GET", f"/table/{table}/{sys_id}", params, what=what, table=table)
        value = result.records[0].get(field, "") if result.records else ""
        return str(value.get("display_value", "") if isinstance(value, dict) else value or "")

    def _direct(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        *,
        what: str,
        table: str,
        **kwargs: Any,
    ) -> TableResult:
        session: requests.Session = self._client.session
        url = f"{self._client.base_url}/api/now{path}"
        try:
            response = session.request(
                method, url, params=dict(params), timeout=self._timeout, **kwargs
            )
        except requests.RequestException as error:
            raise transport_error(error, system=SYSTEM, what=what) from error
        raise_for_table(response, what=what, table=table)
        try:
            result = response.json().get("result")
        except (ValueError, AttributeError):
            raise unreadable_body(response, system=SYSTEM, what=what) from None
        rows = result if isinstance(result, list) else [result] if isinstance(result, dict) else []
        return TableResult([flatten(r) for r in rows], dict(response.headers))


def _read_params(fields: Sequence[str]) -> dict[str, str]:
    return {
        "sysparm_fields": ",".join(fields),
        "sysparm_display_value": "false",
        "sysparm_exclude_reference_link": "true",
    }


def flatten(row: Any) -> Any:
    """Reference fields as plain sys_ids, also where an instance sends `{link, value}`."""
    if not isinstance(row, dict):
        return row
    if dict not in map(type, row.values()):
        return row  # the usual row (sysparm_exclude_reference_link): kept, not copied
    return {
        key: value["value"] if isinstance(value, dict) and "value" in value else value
        for key, value in row.items()
    }


def raise_for_table(response: requests.Response, *, what: str, table: str) -> None:
    if response.status_code == 429:
        log.warning(
            "servicenow.rate_limited",
            what=what,
            retry_after=response.headers.get("Retry-After"),
            **rate_limit_headers(response.headers),
        )
    raise_for_response(response, system=SYSTEM, what=what, auth_hint=auth_hint(table))


def _call(send: Callable[[], Any], *, what: str, table: str) -> TableResult:
    """Send one request through pysnow and read its result, mapping every failure."""
    try:
        response = send()
        records = response.all()
        return TableResult([flatten(r) for r in records], dict(response.headers))
    except requests.HTTPError as error:
        if error.response is None:
            raise ConnectorError(f"{SYSTEM}: {error} for {what}", system=SYSTEM) from error
        raise_for_table(error.response, what=what, table=table)
        raise ConnectorError(f"{SYSTEM}: {error} for {what}", system=SYSTEM) from error
    except ValueError as error:  # JSON cut short (a proxy dropped the connection mid-body)
        raise TransientError(f"{SYSTEM}: unreadable JSON for {what}", system=SYSTEM) from error
    except requests.RequestException as error:
        raise transport_error(error, system=SYSTEM, what=what) from error
    except pysnow.exceptions.PysnowException as error:
        raise ConnectorError(f"{SYSTEM}: {error} for {what}", system=SYSTEM) from error
