"""Table API reads sent ahead in one call through the stock REST Batch API (`/api/now/v1/batch`).

Each cycle polls every incremental stream, and an idle poll is one empty page per table. Those
first pages are independent of each other, so the source asks for all of them in one
`POST /api/now/v1/batch` (`BatchReader.prefetch`) and keeps the answers (`AheadReads`); a
pager asking for exactly that page (`Guard.list`) gets the kept answer instead of making a call.
Later pages of a stream whose first page had rows are read with ordinary calls.

Each sub-response is read as the direct call's response would be (`sub_response`): its status
through the same error mapping (a 403 names the table and the missing role), its base64 body as
a Table API answer. What the direct call would retry (429, 502-504, a body that is not JSON) and
what the instance did not serve (`unserviced_requests`: a size or time limit was reached) is not
kept: the pager then calls directly, with the usual pacing and retries.

An instance that answers the batch endpoint itself with 400, 403, 404, 405 or 501 (an older
release, the REST API plugin's ACLs) has no usable Batch API: batching stops for the life of the
process with one warning (`servicenow.batch_unavailable`); any other failure of the batch call
only sends this cycle's reads directly. `servicenow.batch_reads: false` turns batching off.

Rate limits: the batch is one HTTP request and takes one pacing token, as it counts once
against the instance's REST rate limit rules; its sub-requests run one after another inside it.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests
from requests.structures import CaseInsensitiveDict

from connectors.errors import ConnectorError, RequestRejected, TransientError
from connectors.http import raise_for_response, transport_error, unreadable_body
from connectors.servicenow.client import SYSTEM, TableResult, flatten, log, raise_for_table

if TYPE_CHECKING:
    from connectors.servicenow.guard import Guard

BATCH_PATH = "/api/now/v1/batch"
# Answers of the batch endpoint itself that mean the instance has no Batch API we may use.
UNAVAILABLE = frozenset({400, 403, 404, 405, 501})


@dataclass(frozen=True)
class ListRequest:
    """One Table API page read: the key a kept answer is found by."""

    table: str
    query: str
    fields: tuple[str, ...]
    limit: int

    def params(self) -> dict[str, str]:
        """The query parameters the direct call sends (see `client.PysnowTableClient`)."""
        return {
            "sysparm_query": self.query,
            "sysparm_limit": str(self.limit),
            "sysparm_fields": ",".join(self.fields),
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
            "sysparm_no_count": "true",
            "sysparm_suppress_pagination_header": "true",
        }

    def url(self) -> str:
        """The request's URL relative to the instance, as a batch item names it."""
        return f"/api/now/table/{self.table}?{urlencode(self.params())}"


class BatchUnavailable(RequestRejected):
    """The instance answered the batch endpoint itself with a status meaning "not here"."""


@dataclass(frozen=True)
class BatchAnswer:
    """What one batch call brought: an answer (rows or the error the direct call would have
    raised) per request it served and may be kept; the rest is read directly."""

    answers: Mapping[ListRequest, TableResult | ConnectorError]
    headers: Mapping[str, str] = field(default_factory=dict)

    def unanswered(self, asked: Sequence[ListRequest]) -> list[ListRequest]:
        """The requests that go to the direct call (unserviced, transient, unreadable)."""
        return [request for request in asked if request not in self.answers]


def send_batch(
    session: requests.Session,
    base_url: str,
    asked: Sequence[ListRequest],
    timeout: tuple[float, float],
) -> BatchAnswer:
    """POST the reads to the Batch API; map the batch's own failure like any call's."""
    ids = {f"r{index}": request for index, request in enumerate(asked)}
    body = {
        "batch_request_id": "slm-sync",
        "rest_requests": [
            {
                "id": item,
                "method": "GET",
                "url": request.url(),
                "headers": [{"name": "Accept", "value": "application/json"}],
            }
            for item, request in ids.items()
        ],
    }
    what = f"batch of {len(asked)} table reads"
    try:
        response = session.post(base_url + BATCH_PATH, json=body, timeout=timeout)
    except requests.RequestException as error:
        raise transport_error(error, system=SYSTEM, what=what) from error
    if response.status_code in UNAVAILABLE:
        raise BatchUnavailable(
            f"{SYSTEM} answered {response.status_code} for {BATCH_PATH}",
            system=SYSTEM,
            status=response.status_code,
        )
    raise_for_response(
        response,
        system=SYSTEM,
        what=what,
        auth_hint="check the credentials (servicenow.username / password / oauth_token)",
    )
    try:
        served = response.json().get("serviced_requests") or []
    except (ValueError, AttributeError):
        raise unreadable_body(response, system=SYSTEM, what=what) from None
    answers: dict[ListRequest, TableResult | ConnectorError] = {}
    for item in served if isinstance(served, list) else []:
        request = ids.get(str(item.get("id"))) if isinstance(item, dict) else None
        if request is not None:
            answer = sub_response(item, request, base_url)
            if answer is not None:
                answers[request] = answer
    return BatchAnswer(answers, dict(response.headers))


def sub_response(
    item: Mapping[str, Any], request: ListRequest, base_url: str
) -> TableResult | ConnectorError | None:
    """One serviced item as the direct call would see it: rows, or the error it raises (None
    when the direct call would retry: the caller then makes it)."""
    try:
        content = base64.b64decode(str(item.get("body") or ""), validate=False)
        status = int(item.get("status_code") or 0)
    except (binascii.Error, ValueError, TypeError):
        return None
    response = requests.Response()
    response.status_code = status
    response.reason = str(item.get("status_text") or "")
    response.headers = CaseInsensitiveDict(
        {str(h.get("name")): str(h.get("value")) for h in item.get("headers") or [] if h}
    )
    response._content = content
    response.encoding = "utf-8"
    response.url = base_url + request.url()
    what = f"table {request.table}"
    try:
        raise_for_table(response, what=what, table=request.table)
        result = json.loads(content)
    except TransientError:
        return None
    except ConnectorError as error:
        return error
    except ValueError:
        return None  # cut short: the direct call would retry it
    return _table_result(result, response, what)


def _table_result(
    result: Any, response: requests.Response, what: str
) -> TableResult | ConnectorError | None:
    """A Table API body as pysnow reads it: an `error` object fails, `result` is the rows."""
    if not isinstance(result, dict):
        return None
    rows = result.get("result")
    if rows is None:
        problem = result.get("error") or "the expected `result` key was missing"
        return ConnectorError(f"{SYSTEM}: {problem} for {what}", system=SYSTEM)
    listed = rows if isinstance(rows, list) else [rows]
    return TableResult([flatten(row) for row in listed], dict(response.headers))


class AheadReads:
    """Answers fetched ahead, each handed out once; thread-safe (the pull reads ahead)."""

    def __init__(self) -> None:
        self._answers: dict[ListRequest, TableResult | ConnectorError] = {}
        self._lock = threading.Lock()

    def keep(self, answers: Mapping[ListRequest, TableResult | ConnectorError]) -> None:
        """Forget what the last cycle left unread; keep these."""
        with self._lock:
            self._answers = dict(answers)

    def take(self, request: ListRequest) -> TableResult | None:
        """The kept answer of `request` (raising the error the call would have raised), or
        None: not kept, call directly."""
        with self._lock:
            if not self._answers:
                return None
            answer = self._answers.pop(request, None)
        if isinstance(answer, ConnectorError):
            raise answer
        return answer

    def __len__(self) -> int:
        with self._lock:
            return len(self._answers)


@dataclass
class BatchReader:
    """Sends a cycle's first-page reads in one batch call while the instance has a Batch API."""

    enabled: bool = True
    _warned: bool = False

    def prefetch(self, client: object, guard: Guard, asked: Sequence[ListRequest]) -> None:
        """Fetch `asked` in one call and keep the answers in `guard.ahead` (what is left over
        from the last cycle is dropped). Clients without `batch_list` (fakes) read directly."""
        guard.ahead.keep({})
        batch = getattr(client, "batch_list", None)
        if not asked or not self.enabled or not callable(batch):
            return
        what = f"batch of {len(asked)} table reads"
        try:
            answer: BatchAnswer = guard.call(lambda: batch(asked), what=what)
        except BatchUnavailable as error:
            self._refused(error)
            return
        except ConnectorError as error:
            log.warning(
                "servicenow.batch_failed",
                error=str(error),
                hint="this cycle's first pages are read with one call each",
            )
            return
        guard.ahead.keep(answer.answers)
        log.debug(
            "servicenow.batch_read",
            requests=len(asked),
            answered=len(answer.answers),
            direct=[r.table for r in answer.unanswered(asked)],
        )

    def _refused(self, error: BatchUnavailable) -> None:
        """The instance has no usable Batch API: read directly from now on, say so once."""
        self.enabled = False
        if not self._warned:
            self._warned = True
            log.warning(
                "servicenow.batch_unavailable",
                status=error.status,
                error=str(error),
                hint="the instance does not serve the REST Batch API to this user (an older "
                "release, or an ACL on /api/now/v1/batch); each stream's first page is read "
                "with its own call; set servicenow.batch_reads: false to silence this",
            )
