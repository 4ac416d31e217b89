"""Writing: create and patch review tasks, journals, attachments, aggregates, in-process helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sandbox import Sandbox


def test_create_keeps_every_field_and_numbers_the_record(sn: Any) -> None:
    """POST creates a record with number, sys_id, timestamps, state 1 and all sent fields."""
    body = {
        "short_description": "SLM review: Payroll",
        "correlation_id": "slm:2025:SVC0002:review",
        "correlation_display": "slm-sync",
        "due_date": "2025-07-01 00:00:00",
    }
    response = sn.post("/api/now/table/vtb_task", body, sysparm_exclude_reference_link="true")
    assert response.status_code == 201
    row = response.json()["result"]
    assert row["number"].startswith("VTB") and len(row["sys_id"]) == 32
    assert row["state"] == "1" and row["sys_created_on"] and row["sys_updated_on"]
    assert {k: row[k] for k in body} == body
    assert response.headers["Location"].endswith(f"/api/now/table/vtb_task/{row['sys_id']}")
    found = sn.rows("task", sysparm_query="correlation_id=slm:2025:SVC0002:review")
    assert [r["sys_id"] for r in found] == [row["sys_id"]]


def test_custom_u_table_appears_on_first_write(sn: Any) -> None:
    """A u_* table accepts writes (created as an admin would); other unknown tables do not."""
    assert sn.post("/api/now/table/u_slm_review", {"u_name": "x"}).status_code == 201
    assert sn.get("/api/now/table/u_slm_review").json()["result"][0]["u_name"] == "x"
    assert sn.post("/api/now/table/nonsense", {"a": "b"}).status_code == 400


def test_patch_bumps_mod_count_and_journals_work_notes(sn: Any, sandbox: Sandbox) -> None:
    """PATCH changes fields and sys_mod_count; work_notes become journal entries that read as ""
    by value and as text with display values; created() lists them."""
    created = sn.post("/api/now/table/task", {"short_description": "review"}).json()["result"]
    path = f"/api/now/table/task/{created['sys_id']}"
    patched = sn.patch(path, {"work_notes": "Pack attached", "state": "2"}).json()["result"]
    assert patched["state"] == "2" and patched["work_notes"] == ""
    assert patched["sys_mod_count"] == "1"
    shown = sn.get(path, sysparm_display_value="true").json()["result"]
    assert "Pack attached" in shown["work_notes"]
    dump = sandbox.servicenow.created()
    assert created["sys_id"] in {r["sys_id"] for r in dump["records"]["task"]}
    assert dump["journal"][created["sys_id"]][0]["value"] == "Pack attached"


def test_attachment_upload_and_listing(sn: Any) -> None:
    """Uploading a raw body answers 201 with the attachment record; it is listed and readable."""
    task = sn.post("/api/now/table/task", {"short_description": "with file"}).json()["result"]
    response = sn.session.post(
        sn.base_url + "/api/now/attachment/file",
        params={"table_name": "task", "table_sys_id": task["sys_id"], "file_name": "pack.md"},
        data=b"# Review pack",
        headers={"Content-Type": "text/markdown"},
        timeout=10,
    )
    assert response.status_code == 201
    record = response.json()["result"]
    assert record["file_name"] == "pack.md" and record["size_bytes"] == "13"
    listed = sn.get("/api/now/attachment", sysparm_query=f"table_sys_id={task['sys_id']}")
    assert [r["sys_id"] for r in listed.json()["result"]] == [record["sys_id"]]
    assert sn.session.get(record["download_link"], timeout=10).content == b"# Review pack"


def test_aggregate_count_and_group_by(sn: Any, sandbox: Sandbox) -> None:
    """The stats API counts (as strings) and groups by a field."""
    total = sn.get("/api/now/stats/task_sla", sysparm_count="true").json()
    assert total == {"result": {"stats": {"count": str(len(sandbox.estate.sla_records))}}}
    grouped = sn.get(
        "/api/now/stats/task_sla", sysparm_count="true", sysparm_group_by="has_breached"
    ).json()["result"]
    counts = {g["groupby_fields"][0]["value"]: int(g["stats"]["count"]) for g in grouped}
    breached = sum(r.has_breached for r in sandbox.estate.sla_records)
    assert counts == {"true": breached, "false": len(sandbox.estate.sla_records) - breached}


def test_in_process_update_stamps_the_sandbox_clock(sandbox: Sandbox, sn: Any) -> None:
    """app.update / app.insert stamp sys_updated_on with app.clock, so tests can place several
    changes in one second."""
    app = sandbox.servicenow
    app.clock = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
    try:
        first = app.insert("u_clock_test", u_name="a")
        second = app.insert("u_clock_test", u_name="b")
        app.update("u_clock_test", first["sys_id"], u_name="a2")
    finally:
        app.clock = None
    rows = sn.rows("u_clock_test", sysparm_query="sys_updated_on=2025-06-01 12:00:00")
    assert {r["u_name"] for r in rows} == {"a2", "b"}
    assert second["sys_updated_on"] == "2025-06-01 12:00:00"
