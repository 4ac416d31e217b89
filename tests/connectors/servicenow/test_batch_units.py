"""Batch sub-responses read as the direct call's response would be, and kept answers handed out
once (`connectors.servicenow.batch`)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from connectors import AuthError, ConnectorError, RequestRejected
from connectors.servicenow.batch import AheadReads, ListRequest, sub_response
from connectors.servicenow.client import TableResult

BASE = "https://acme.service-now.com"
READ = ListRequest("task_sla", "sys_updated_on>2025-06-01 00:00:00", ("sys_id",), 100)


def _item(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {
        "id": "r0",
        "status_code": status,
        "status_text": "",
        "headers": [{"name": k, "value": v} for k, v in (headers or {}).items()],
        "body": base64.b64encode(raw).decode(),
        "execution_time": 3,
    }


def test_a_served_page_is_its_rows_with_references_flattened_and_its_headers() -> None:
    """A 200 item's base64 body is the Table API answer: rows (references as sys_ids) and the
    item's own headers (rate-limit headers are read from them as from a direct answer)."""
    row = {"sys_id": "a" * 32, "task": {"link": "x", "value": "b" * 32}}
    answer = sub_response(_item(200, {"result": [row]}, {"X-Total-Count": "1"}), READ, BASE)
    assert isinstance(answer, TableResult)
    assert answer.records == [{"sys_id": "a" * 32, "task": "b" * 32}]
    assert answer.headers["X-Total-Count"] == "1"


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_what_the_direct_call_would_retry_is_left_to_it(status: int) -> None:
    """A 429 or 5xx item is not kept: the pager makes the call itself, paced and retried."""
    assert sub_response(_item(status, {"error": {"message": "busy"}}), READ, BASE) is None


def test_a_body_cut_short_or_not_base64_is_left_to_the_direct_call() -> None:
    """An item whose body is not JSON (or not base64) is read again directly."""
    assert sub_response(_item(200, b'{"result": [{"sys_'), READ, BASE) is None
    assert sub_response({**_item(200, {}), "body": "%%%"}, READ, BASE) is None


def test_an_acl_refusal_names_the_table_and_the_role() -> None:
    """A 403 item is the AuthError the direct read raises, with the role to grant."""
    answer = sub_response(_item(403, {"error": {"message": "User Not Authorized"}}), READ, BASE)
    assert isinstance(answer, AuthError)
    assert "403 for table task_sla" in str(answer) and "itil" in (answer.hint or "")


def test_a_rejected_read_and_an_error_body_fail_as_pysnow_would() -> None:
    """A 400 is RequestRejected with the instance's message; a 200 without `result` fails."""
    rejected = sub_response(_item(400, {"error": {"message": "Invalid table"}}), READ, BASE)
    assert isinstance(rejected, RequestRejected) and "Invalid table" in str(rejected)
    broken = sub_response(_item(200, {"error": {"message": "odd"}}), READ, BASE)
    assert isinstance(broken, ConnectorError) and "table task_sla" in str(broken)


def test_a_kept_answer_is_handed_out_once_and_a_kept_error_raised() -> None:
    """`take` pops: the second ask for the same page goes to the instance; a kept error is
    raised where the call would have raised it."""
    ahead = AheadReads()
    other = ListRequest("problem", "", ("sys_id",), 100)
    ahead.keep({READ: TableResult([]), other: AuthError("servicenow answered 403")})
    assert ahead.take(READ) == TableResult([])
    assert ahead.take(READ) is None
    with pytest.raises(AuthError):
        ahead.take(other)
    ahead.keep({READ: TableResult([])})
    ahead.keep({})
    assert ahead.take(READ) is None, "a new cycle drops what the last one left"
