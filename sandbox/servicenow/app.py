"""The ServiceNow stand-in: Table API, Aggregate API and Attachment API over the seeded estate.

Routes (Basic auth with any user and password except `knobs.rejected_password`, or a Bearer token):

    GET  POST               /api/now/table/<table>
    GET  PATCH PUT DELETE   /api/now/table/<table>/<sys_id>
    GET                     /api/now/stats/<table>           (Aggregate API)
    POST                    /api/now/attachment/file         (raw body upload)
    GET                     /api/now/attachment              (attachment records)
    GET                     /api/now/attachment/<sys_id>/file
    DELETE                  /api/now/attachment/<sys_id>
    GET                     /sys_attachment.do?sys_id=<sys_id>  (what a person's browser opens)
    POST                    /api/now/v1/batch                (REST Batch API: `batch`)

Who acts: Basic auth names the user. A login that is a `sys_user`'s `user_name` or `email` acts
as that person (`sys_created_by` of their records and journal entries is their `user_name`);
any other login acts under that login as given (the integration account: `settings.username`);
a Bearer token acts as `admin`. `sysparm_query` may use `javascript:gs.getUserID()`: the acting
user's `sys_user` sys_id, as on a real instance.

Work notes and additional comments are journal entries: readable through the Table API as the
stock table `sys_journal_field` (see `sandbox.servicenow.store`), never stored on the task.

Every table accepts writes (the sandbox user is an admin), so tests can change source data over
HTTP; in-process, `app.insert(table, **fields)` and `app.update(table, sys_id, **fields)` stamp
`sys_updated_on` with `app.clock` (None = wall time; set a datetime to place writes in a second).

The schema is a stock instance's: stock tables serve no `u_` field (knob
`servicenow_custom_fields` makes the instance "customised" with the seeded `u_` fields), Service
Portfolio Management's commitment tables are there, `sys_db_object` / `sys_dictionary` describe
every table, and knob `invalid_query_returns_no_rows` is the instance property
`glide.invalid_query.returns_no_rows`.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox.estate import Estate
from sandbox.http import json_response, short_page
from sandbox.http.knobs import Knobs
from sandbox.servicenow.aggregate import aggregate
from sandbox.servicenow.batch import BatchEndpoint
from sandbox.servicenow.listing import link_header, parse_limit, parse_offset, select
from sandbox.servicenow.render import RowRenderer
from sandbox.servicenow.schema import SCHEMA_TABLES, refresh_schema
from sandbox.servicenow.seed import seed_store
from sandbox.servicenow.store import JOURNAL_TABLE, Row, TableStore
from sandbox.servicenow.tables import is_writable_new_table

__all__ = ["ServiceNowApp"]

_TABLE = "/api/now/table/<table>"
ACTOR = "sandbox.servicenow.actor"  # environ key: the acting user's user_name


def failure(status: int, message: str, detail: str | None = None) -> Response:
    """ServiceNow's error shape."""
    return json_response(
        {"error": {"message": message, "detail": detail}, "status": "failure"}, status
    )


class ServiceNowApp:
    name = "servicenow"

    def __init__(self, estate: Estate, knobs: Knobs) -> None:
        self.estate = estate
        self.knobs = knobs
        self.clock: datetime | None = None
        self.url_map = Map(
            [
                Rule(_TABLE, methods=["GET"], endpoint="list"),
                Rule(_TABLE, methods=["POST"], endpoint="create"),
                Rule(f"{_TABLE}/<sys_id>", methods=["GET"], endpoint="get"),
                Rule(f"{_TABLE}/<sys_id>", methods=["PATCH", "PUT"], endpoint="patch"),
                Rule(f"{_TABLE}/<sys_id>", methods=["DELETE"], endpoint="delete"),
                Rule("/api/now/stats/<table>", methods=["GET"], endpoint="stats"),
                Rule("/api/now/attachment/file", methods=["POST"], endpoint="upload"),
                Rule("/api/now/attachment", methods=["GET"], endpoint="attachments"),
                Rule("/api/now/attachment/<sys_id>/file", methods=["GET"], endpoint="download"),
                Rule(
                    "/api/now/attachment/<sys_id>", methods=["DELETE"], endpoint="delete_attachment"
                ),
                Rule("/sys_attachment.do", methods=["GET"], endpoint="attachment_form"),
                Rule("/api/now/<version>/batch", methods=["POST"], endpoint="batch"),
            ],
            strict_slashes=False,
        )
        self.batch = BatchEndpoint(self.url_map, knobs, self.dispatch, failure)
        self.reset_state()

    # --- state -----------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Back to the seeded estate: forget every write."""
        self.store = TableStore(self.estate.seed)
        seed_store(self.store, self.estate)
        self.files: dict[str, bytes] = {}
        self._created: list[tuple[str, str]] = []

    def now(self) -> datetime:
        return self.clock if self.clock is not None else datetime.now(UTC)

    def insert(self, table: str, **fields: Any) -> Row:
        """Create a record as a client would (as admin), stamped with `clock`."""
        return self.insert_as("admin", table, fields)

    def insert_as(self, actor: str, table: str, fields: dict[str, Any]) -> Row:
        """Create a record as the user `actor` (a user_name), stamped with `clock`."""
        row = self.store.insert(table, fields, self.now(), actor)
        self._created.append((table, row["sys_id"]))
        return row

    def update(self, table: str, sys_id: str, **fields: Any) -> Row:
        """Change a record (journal fields add entries) as admin, stamped with `clock`."""
        return self.update_as("admin", table, sys_id, fields)

    def update_as(self, actor: str, table: str, sys_id: str, fields: dict[str, Any]) -> Row:
        """Change a record as the user `actor` (a user_name), stamped with `clock`."""
        row = self.store.find(table, sys_id)
        if row is None:
            raise KeyError(f"no {table} record {sys_id}")
        return self.store.update(table, row, fields, self.now(), actor)

    def delete(self, table: str, sys_id: str) -> None:
        """Delete a record as a client would, audited in `sys_audit_delete` at `clock`."""
        if self.store.find(table, sys_id) is None:
            raise KeyError(f"no {table} record {sys_id}")
        self.store.delete(table, sys_id, self.now())

    def created(self) -> dict[str, Any]:
        """What clients created: records per table, journal entries, attachments."""
        records: dict[str, list[Row]] = {}
        for table, sys_id in self._created:
            found = self.store.by_id.get(sys_id)
            if found is not None:
                records.setdefault(table, []).append(dict(found[1]))
        return {
            "records": records,
            "journal": self._journals(),
            "attachments": [dict(r) for r in self.store.rows("sys_attachment")],
        }

    def _journals(self) -> dict[str, list[Row]]:
        """Journal entries by the sys_id of their record, oldest first."""
        found: dict[str, list[Row]] = {}
        for entry in self.store.rows(JOURNAL_TABLE):
            found.setdefault(entry["element_id"], []).append(dict(entry))
        for entries in found.values():
            entries.sort(key=lambda e: (e["sys_created_on"], e["sys_id"]))
        return found

    # --- HTTP ------------------------------------------------------------------------------

    def error(self, request: Request, error: HTTPException) -> Response:
        return failure(error.code or 400, "Requested URI does not represent any resource")

    def dispatch(self, request: Request, endpoint: str, values: dict[str, Any]) -> Response:
        actor = self._authenticate(request)
        if actor is None:
            return failure(401, "User Not Authenticated", "Required to provide Auth information")
        request.environ[ACTOR] = actor
        self.store.custom_fields = self.knobs.servicenow_custom_fields
        table = values.get("table")
        if table is not None and not self._table_ok(table, endpoint == "create"):
            return failure(400, f"Invalid table {table}")
        if table is not None and table in self.knobs.servicenow_denied_tables and actor != "admin":
            return failure(403, "User Not Authorized", "Failed API level ACL Validation")
        handler = getattr(self, f"_{endpoint}")
        response: Response = handler(request, **values)
        return response

    def _authenticate(self, request: Request) -> str | None:
        """The acting user's user_name (see the module docstring), or None: 401."""
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials:
            return "admin"
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(credentials).decode().partition(":")
            except ValueError:
                user, password = "", ""
            if user and password != self.knobs.rejected_password:
                return self._user_name(user)
        return None

    def _user_name(self, login: str) -> str:
        """The user a login names, by user name or email (case-insensitive); every request
        asks, so the users are looked up by index, not scanned."""
        wanted = login.casefold()
        if not wanted:
            return login
        for field in ("user_name", "email"):
            for user in self.store.value_index("sys_user", field).get(wanted, ()):
                return user.get("user_name") or login
        return login

    def _user_sys_id(self, user_name: str) -> str:
        for user in self.store.value_index("sys_user", "user_name").get(user_name.casefold(), ()):
            if user.get("user_name") == user_name:
                return user["sys_id"]
        return ""

    def _table_ok(self, table: str, creating: bool) -> bool:
        return self.store.exists(table) or (creating and is_writable_new_table(table))

    def _renderer(self, request: Request) -> RowRenderer:
        args = request.args
        fields = args.get("sysparm_fields")
        return RowRenderer(
            self.store,
            request.host_url.rstrip("/"),
            [f.strip() for f in fields.split(",") if f.strip()] if fields else None,
            args.get("sysparm_display_value", "false").lower(),
            args.get("sysparm_exclude_reference_link", "false").lower() == "true",
        )

    def _list(self, request: Request, table: str) -> Response:
        args = request.args
        count = args.get("sysparm_no_count", "false").lower() != "true"
        if table in SCHEMA_TABLES:
            refresh_schema(self.store)
        query_text = args.get("sysparm_query", "").replace(
            "javascript:gs.getUserID()", self._user_sys_id(_actor(request))
        )
        page = select(
            self.store,
            table,
            query_text,
            parse_limit(args.get("sysparm_limit")),
            parse_offset(args.get("sysparm_offset")),
            count,
            self.knobs.invalid_query_returns_no_rows,
        )
        rows = page.rows
        if short_page(request) and len(rows) > 1:
            rows = rows[: max(1, len(rows) // 2)]  # as if an ACL hid the rest of the page
        render = self._renderer(request).render
        headers = {}
        if args.get("sysparm_suppress_pagination_header", "false").lower() != "true":
            headers["Link"] = link_header(request.base_url, dict(args.items()), page)
        if page.total is not None:
            headers["X-Total-Count"] = str(page.total)
        return json_response({"result": [render(row) for row in rows]}, 200, headers)

    def _get(self, request: Request, table: str, sys_id: str) -> Response:
        row = self.store.find(table, sys_id)
        if row is None:
            return _no_record()
        return json_response({"result": self._renderer(request).render(row)})

    def _create(self, request: Request, table: str) -> Response:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return failure(400, "Exception while reading request", "The payload is not valid JSON.")
        row = self.insert_as(_actor(request), table, body)
        location = f"{request.host_url}api/now/table/{table}/{row['sys_id']}"
        result = self._renderer(request).render(row)
        return json_response({"result": result}, 201, {"Location": location})

    def _patch(self, request: Request, table: str, sys_id: str) -> Response:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return failure(400, "Exception while reading request", "The payload is not valid JSON.")
        row = self.store.find(table, sys_id)
        if row is None:
            return _no_record()
        self.store.update(table, row, body, self.now(), _actor(request))
        return json_response({"result": self._renderer(request).render(row)})

    def _delete(self, request: Request, table: str, sys_id: str) -> Response:
        if self.store.find(table, sys_id) is None:
            return _no_record()
        if not self.store.delete(table, sys_id, self.now()):
            return _no_record()
        return Response(b"", 204)

    def _batch(self, request: Request, version: str) -> Response:
        return self.batch.serve(request, version)

    def sub_requests(self) -> dict[str, int]:
        """Requests run inside batch calls since the last reset, by "METHOD table"."""
        return dict(self.batch.sub_requests)

    def reset_sub_requests(self) -> None:
        self.batch.sub_requests.clear()

    def _stats(self, request: Request, table: str) -> Response:
        return json_response({"result": aggregate(self.store, table, request.args)})

    def _upload(self, request: Request) -> Response:
        args = request.args
        table, table_sys_id = args.get("table_name", ""), args.get("table_sys_id", "")
        file_name = args.get("file_name", "")
        if not file_name or not table_sys_id or self.store.find(table, table_sys_id) is None:
            return failure(
                400,
                "Invalid table_name, table_sys_id or file_name",
                "table_name, table_sys_id and file_name must name a record",
            )
        data = request.get_data()
        row = self.insert(
            "sys_attachment",
            file_name=file_name,
            table_name=table,
            table_sys_id=table_sys_id,
            size_bytes=str(len(data)),
            size_compressed=str(len(data)),
            compressed="false",
            state="available",
            content_type=request.content_type or "application/octet-stream",
        )
        self.files[row["sys_id"]] = data
        result = {**row, "download_link": self._download_link(request, row)}
        return json_response(
            {"result": result},
            201,
            {"Location": f"{request.host_url}api/now/attachment/{row['sys_id']}"},
        )

    def _attachments(self, request: Request) -> Response:
        args = request.args
        page = select(
            self.store,
            "sys_attachment",
            args.get("sysparm_query", ""),
            parse_limit(args.get("sysparm_limit")),
            parse_offset(args.get("sysparm_offset")),
            True,
        )
        result = [{**row, "download_link": self._download_link(request, row)} for row in page.rows]
        return json_response({"result": result}, 200, {"X-Total-Count": str(page.total)})

    def _download(self, request: Request, sys_id: str) -> Response:
        row = self.store.find("sys_attachment", sys_id)
        if row is None or sys_id not in self.files:
            return _no_record()
        return Response(self.files[sys_id], 200, content_type=row.get("content_type"))

    def _attachment_form(self, request: Request) -> Response:
        """`sys_attachment.do?sys_id=`: the file itself, as an instance serves the link a
        description shows (404 once the attachment is gone)."""
        return self._download(request, request.args.get("sys_id", ""))

    def _delete_attachment(self, request: Request, sys_id: str) -> Response:
        if self.store.find("sys_attachment", sys_id) is None:
            return _no_record()
        self.store.delete("sys_attachment", sys_id)
        self.files.pop(sys_id, None)
        return Response(b"", 204)

    @staticmethod
    def _download_link(request: Request, row: Row) -> str:
        return f"{request.host_url}api/now/attachment/{row['sys_id']}/file"


def _actor(request: Request) -> str:
    return str(request.environ.get(ACTOR, "admin"))


def _no_record() -> Response:
    return failure(
        404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
    )
