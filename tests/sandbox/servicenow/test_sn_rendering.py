"""How rows look: reference links, display values, dot-walked fields, errors, auth."""

from __future__ import annotations

from typing import Any

import requests

from sandbox import Sandbox


def _service(sn: Any, sandbox: Sandbox, **params: Any) -> dict[str, Any]:
    sys_id = sandbox.estate.services[0].sys_id
    response = sn.get(f"/api/now/table/cmdb_ci_service/{sys_id}", **params)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()["result"]
    return result


def test_values_are_strings_and_references_carry_links(sn: Any, sandbox: Sandbox) -> None:
    """By default a reference is {link, value} with a link into the referenced table; every
    other value is a string."""
    row = _service(sn, sandbox)
    owner = sandbox.estate.services[0].owner
    assert row["owned_by"] == {
        "link": f"{sn.base_url}/api/now/table/sys_user/{owner}",
        "value": owner,
    }
    plain = {k: v for k, v in row.items() if not isinstance(v, dict)}
    assert all(isinstance(v, str) for v in plain.values())
    assert row["busines_criticality"] == "1 - most critical"


def test_exclude_reference_link_gives_plain_sys_ids(sn: Any, sandbox: Sandbox) -> None:
    """sysparm_exclude_reference_link=true turns references into their sys_id."""
    row = _service(sn, sandbox, sysparm_exclude_reference_link="true")
    assert row["owned_by"] == sandbox.estate.services[0].owner


def test_display_value_true_and_all(sn: Any, sandbox: Sandbox) -> None:
    """true shows display values (a person's name, a choice label); all shows both."""
    owner = sandbox.estate.person(sandbox.estate.services[0].owner or "")
    shown = _service(sn, sandbox, sysparm_display_value="true")
    assert shown["owned_by"]["display_value"] == owner.name
    assert shown["name"] == sandbox.estate.services[0].name
    both = _service(sn, sandbox, sysparm_display_value="all")
    assert both["owned_by"]["display_value"] == owner.name
    assert both["owned_by"]["value"] == owner.sys_id
    assert both["owned_by"]["link"].endswith(f"/sys_user/{owner.sys_id}")
    incident = sn.rows(
        "incident",
        sysparm_query="priority=1",
        sysparm_limit=1,
        sysparm_display_value="all",
        sysparm_fields="priority",
    )[0]
    assert incident["priority"] == {"display_value": "1 - Critical", "value": "1"}


def test_fields_select_and_dot_walk(sn: Any, sandbox: Sandbox) -> None:
    """sysparm_fields limits the keys; dot-walked names read through references."""
    record = sandbox.estate.sla_records[0]
    incident = next(i for i in sandbox.estate.incidents if i.sys_id == record.task)
    rows = sn.rows(
        "task_sla",
        sysparm_query=f"sys_id={record.sys_id}",
        sysparm_fields="sys_id,task.business_service,task.priority,sla.name",
        sysparm_exclude_reference_link="true",
    )
    agreement = next(a for a in sandbox.estate.agreements if a.sys_id == record.sla)
    assert rows == [
        {
            "sys_id": record.sys_id,
            "task.business_service": incident.business_service,
            "task.priority": incident.priority,
            "sla.name": agreement.name,
        }
    ]


def test_task_sla_fields_follow_the_stock_schema(sn: Any) -> None:
    """task_sla rows carry stage, has_breached, times and a ServiceNow duration string."""
    row = sn.rows("task_sla", sysparm_limit=1, sysparm_query="stage=completed")[0]
    for name in (
        "task",
        "sla",
        "stage",
        "has_breached",
        "start_time",
        "end_time",
        "planned_end_time",
        "business_percentage",
        "duration",
        "business_duration",
        "sys_updated_on",
        "sys_created_on",
        "active",
    ):
        assert name in row
    assert row["has_breached"] in ("true", "false")
    assert row["duration"].startswith("1970-01-")


def test_unknown_table_and_record(sn: Any) -> None:
    """An unknown table is 400 "Invalid table"; an unknown sys_id is 404 "No Record found"."""
    response = sn.get("/api/now/table/no_such_table")
    assert response.status_code == 400
    assert response.json() == {
        "error": {"message": "Invalid table no_such_table", "detail": None},
        "status": "failure",
    }
    missing = sn.get("/api/now/table/incident/0123456789abcdef0123456789abcdef")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "No Record found"


def test_authentication(sandbox: Sandbox) -> None:
    """No credentials or the rejected password answer 401; a bearer token is accepted."""
    url = sandbox.servicenow_url + "/api/now/table/sys_user?sysparm_limit=1"
    assert requests.get(url, timeout=10).status_code == 401
    wrong = requests.get(url, auth=("admin", sandbox.knobs.rejected_password), timeout=10)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "User Not Authenticated"
    bearer = requests.get(url, headers={"Authorization": "Bearer token"}, timeout=10)
    assert bearer.status_code == 200
