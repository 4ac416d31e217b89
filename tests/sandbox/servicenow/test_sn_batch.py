"""The stand-in's REST Batch API (`POST /api/now/v1/batch`): base64 bodies, per-item status
codes and identity, the limits that leave items unserviced, the missing endpoint; each knob
turned on by a test."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from sandbox import Sandbox

Factory = Callable[..., Sandbox]
ServiceNowClient = Any  # tests/sandbox/conftest.py's client: a requests session with auth
Client = Callable[[Sandbox], ServiceNowClient]


def _item(item_id: str, url: str, **extra: Any) -> dict[str, Any]:
    accept = [{"name": "Accept", "value": "application/json"}]
    return {"id": item_id, "method": "GET", "url": url, "headers": accept, **extra}


def _batch(sn: ServiceNowClient, *items: dict[str, Any], **headers: str) -> Any:
    body = {"batch_request_id": "b1", "rest_requests": list(items)}
    return sn.session.post(
        f"{sn.base_url}/api/now/v1/batch", json=body, headers=headers, timeout=10
    )


def _body(served: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(served["body"]))


def test_items_run_one_by_one_with_base64_bodies_and_their_own_status(
    sandbox_factory: Factory, sn_client: Client
) -> None:
    """Each item is answered as its own request would be: a page, an unknown table (400), a
    table the user's ACL refuses (403), a missing record (404); the batch is one request to
    the harness, its items are counted apart by table."""
    site = sandbox_factory(services=3, sla_records=50)
    site.knobs.update({"servicenow_denied_tables": ["contract_sla"]})
    site.servicenow_harness.reset()
    sn = sn_client(site)
    response = _batch(
        sn,
        _item("1", "/api/now/table/cmdb_ci_service?sysparm_limit=2&sysparm_fields=sys_id"),
        _item("2", "/api/now/table/no_such_table"),
        _item("3", "/api/now/table/contract_sla?sysparm_limit=1"),
        _item("4", "/api/now/table/incident/" + "0" * 32, exclude_response_headers=True),
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["batch_request_id"] == "b1" and answer["unserviced_requests"] == []
    served = {s["id"]: s for s in answer["serviced_requests"]}
    assert [served[i]["status_code"] for i in "1234"] == [200, 400, 403, 404]
    assert len(_body(served["1"])["result"]) == 2
    assert _body(served["3"])["error"]["detail"] == "Failed API level ACL Validation"
    assert served["1"]["headers"] and served["4"]["headers"] == []
    assert all(isinstance(s["execution_time"], int) for s in served.values())
    counts = site.servicenow_harness.requests()
    assert counts["by_route"] == {"POST /api/now/<version>/batch": 1}
    assert counts["sub_requests"] == {
        "GET cmdb_ci_service": 1, "GET no_such_table": 1, "GET contract_sla": 1,
        "GET incident": 1,
    }  # fmt: skip


def test_only_v1_is_a_batch_endpoint(sn: ServiceNowClient) -> None:
    """`/api/now/batch` (as the documentation's path reads) and `v2` are no resource: 404."""
    body = {"batch_request_id": "b", "rest_requests": [_item("1", "/api/now/table/incident")]}
    for path in ("/api/now/batch", "/api/now/v2/batch"):
        response = sn.session.post(sn.base_url + path, json=body, timeout=10)
        assert response.status_code == 404, path
        assert response.json()["error"]["message"].startswith("Requested URI does not")


def test_knob_servicenow_batch_off_answers_404(sandbox_factory: Factory, sn_client: Client) -> None:
    """`servicenow_batch: false`: the instance has no Batch API (an older release)."""
    site = sandbox_factory()
    site.knobs.update({"servicenow_batch": False})
    assert _batch(sn_client(site), _item("1", "/api/now/table/incident")).status_code == 404


def test_knob_output_size_leaves_the_large_item_and_the_rest_unserviced(
    sandbox_factory: Factory, sn_client: Client
) -> None:
    """An item whose answer exceeds `servicenow_batch_output_bytes` cancels the rest of the
    batch: it and every later item are unserviced; the header lowers the limit further."""
    site = sandbox_factory()
    sn = sn_client(site)
    items = (
        _item("small", "/api/now/table/incident?sysparm_limit=1&sysparm_query=number=NONE"),
        _item("large", "/api/now/table/incident?sysparm_limit=20"),
        _item("after", "/api/now/table/incident?sysparm_limit=1&sysparm_query=number=NONE"),
    )
    site.knobs.update({"servicenow_batch_output_bytes": 500})
    answer = _batch(sn, *items).json()
    assert [s["id"] for s in answer["serviced_requests"]] == ["small"]
    assert answer["unserviced_requests"] == ["large", "after"]
    site.knobs.update({"servicenow_batch_output_bytes": 10 * 1024 * 1024})
    lowered = _batch(sn, *items, **{"X-BATCHREQUEST-MAX-OUTPUT-SIZE": "500"}).json()
    assert lowered["unserviced_requests"] == ["large", "after"]


def test_knob_time_limit_leaves_the_items_not_yet_run_unserviced(
    sandbox_factory: Factory, sn_client: Client
) -> None:
    """With each item taken to run 100 ms and 250 ms allowed, three items run, the rest are
    returned unserviced."""
    site = sandbox_factory()
    site.knobs.update({"servicenow_batch_timeout_ms": 250, "servicenow_batch_item_ms": 100})
    items = [_item(str(n), "/api/now/table/incident?sysparm_limit=1") for n in range(5)]
    answer = _batch(sn_client(site), *items).json()
    assert [s["id"] for s in answer["serviced_requests"]] == ["0", "1", "2"]
    assert answer["unserviced_requests"] == ["3", "4"]


def test_a_batch_of_items_without_id_or_url_is_refused(sn: ServiceNowClient) -> None:
    """rest_requests must name id, method and url: 400 otherwise."""
    response = _batch(sn, {"id": "1", "method": "GET"})
    assert response.status_code == 400
