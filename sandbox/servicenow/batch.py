"""The REST Batch API of the ServiceNow stand-in: `POST /api/now/v1/batch`.

As on an instance: the body names `rest_requests` (`id`, `method`, `url` relative to the instance
with its query string, `headers` as name/value pairs, a base64 `body`, `exclude_response_headers`);
each item runs through the stand-in's own routes, one after another, with the caller's identity
(so ACLs, denied tables and unknown tables answer per item); the answer lists
`serviced_requests` (`id`, `status_code`, `status_text`, `headers`, base64 `body`,
`execution_time` in ms) and `unserviced_requests` (ids). Only `v1` exists: unversioned
`/api/now/batch` and `v2`, which the documentation suggests, answer "Requested URI does not
represent any resource" (404), as instances do.

Unkind where a real instance is, with knobs (`sandbox.http.knobs`):
- `servicenow_batch: false`: the endpoint is not there (404, an older release);
- `servicenow_batch_output_bytes` (lowered further by `X-BATCHREQUEST-MAX-OUTPUT-SIZE`): an
  item whose response is larger cancels the rest of the batch: it and every later item are
  unserviced;
- `servicenow_batch_timeout_ms` with `servicenow_batch_item_ms` (time each item is taken to run,
  on top of the measured time, never slept): once the batch's time is used up, the items not
  yet run are unserviced.

The harness counts the batch as one request (one rate-limit slot, one latency, one fault draw:
a `short` fault shortens the pages of every item); the items it ran are counted apart
(`sub_requests`, in `GET /__sandbox/requests`).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from sandbox.http import json_response, short_page
from sandbox.http.harness import SHORT_PAGE
from sandbox.http.knobs import Knobs

VERSIONS = ("v1",)
OUTPUT_SIZE_HEADER = "X-BATCHREQUEST-MAX-OUTPUT-SIZE"
NO_RESOURCE = "Requested URI does not represent any resource"

Dispatch = Callable[[Request, str, dict[str, Any]], Response]
Failure = Callable[[int, str, str | None], Response]


@dataclass
class BatchEndpoint:
    """Runs batch items through the stand-in's routes; counts the items it ran."""

    url_map: Map
    knobs: Knobs
    dispatch: Dispatch
    failure: Failure
    sub_requests: Counter[str] = field(default_factory=Counter)

    def serve(self, request: Request, version: str) -> Response:
        if not self.knobs.servicenow_batch or version not in VERSIONS:
            return self.failure(404, NO_RESOURCE, None)
        body = request.get_json(force=True, silent=True)
        items = body.get("rest_requests") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(_valid(item) for item in items):
            return self.failure(
                400,
                "Exception while reading request",
                "rest_requests must list objects with id, method and url",
            )
        limit = self._output_limit(request)
        budget_ms = self.knobs.servicenow_batch_timeout_ms
        spent_ms = 0.0
        serviced: list[dict[str, Any]] = []
        unserviced: list[str] = []
        for item in items:
            if unserviced or spent_ms >= budget_ms:
                unserviced.append(str(item["id"]))
                continue
            started = time.perf_counter()
            response = self._run(request, item)
            took = (time.perf_counter() - started) * 1000 + self.knobs.servicenow_batch_item_ms
            spent_ms += took
            data = response.get_data()
            if len(data) > limit:  # the transaction is cancelled: this item and the rest
                unserviced.append(str(item["id"]))
                continue
            serviced.append(_served(item, response, data, took))
        answer = {
            "batch_request_id": body.get("batch_request_id", "") if isinstance(body, dict) else "",
            "serviced_requests": serviced,
            "unserviced_requests": unserviced,
        }
        return json_response(answer)

    def _output_limit(self, request: Request) -> int:
        limit = self.knobs.servicenow_batch_output_bytes
        asked = request.headers.get(OUTPUT_SIZE_HEADER, "")
        return min(limit, int(asked)) if asked.strip().isdigit() else limit

    def _run(self, outer: Request, item: dict[str, Any]) -> Response:
        """One item as its own request to the stand-in, as the caller."""
        parts = urlsplit(str(item["url"]))
        headers = [(str(h.get("name")), str(h.get("value"))) for h in item.get("headers") or []]
        auth = outer.headers.get("Authorization")
        if auth:
            headers.append(("Authorization", auth))
        try:
            data = base64.b64decode(str(item.get("body") or ""))
        except (binascii.Error, ValueError):
            return self.failure(400, "Exception while reading request", "body is not base64")
        environ = EnvironBuilder(
            path=parts.path,
            base_url=outer.host_url,
            query_string=parts.query,
            method=str(item["method"]).upper(),
            headers=headers,
            data=data,
        ).get_environ()
        if short_page(outer):  # ACLs shorten the pages of a batch's items as well
            environ[SHORT_PAGE] = True
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            rule, values = adapter.match(return_rule=True)
        except HTTPException as error:
            return self.failure(error.code or 400, NO_RESOURCE, None)
        if rule.endpoint == "batch":
            return self.failure(400, "A batch cannot contain a batch", None)
        self.sub_requests[f"{request.method} {values.get('table') or rule.rule}"] += 1
        return self.dispatch(request, str(rule.endpoint), dict(values))


def _valid(item: Any) -> bool:
    return isinstance(item, dict) and all(item.get(key) for key in ("id", "method", "url"))


def _served(
    item: dict[str, Any], response: Response, data: bytes, took_ms: float
) -> dict[str, Any]:
    headers = [] if item.get("exclude_response_headers") else [
        {"name": name, "value": value} for name, value in response.headers.items()
    ]  # fmt: skip
    status = response.status_code
    try:
        text = HTTPStatus(status).phrase
    except ValueError:
        text = ""
    return {
        "id": str(item["id"]),
        "status_code": status,
        "status_text": text,
        "headers": headers,
        "body": base64.b64encode(data).decode(),
        "execution_time": round(took_ms),
    }
