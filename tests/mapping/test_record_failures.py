"""Bad data in one record skips that record, reported with its id and field; the run goes on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from structlog.testing import capture_logs

from mapping import SystemMapping
from review import Material, SkippedRecord, SlaRecord

SERVICE = "27d32778c0a8000b00db970eeaa60f16"


def task_sla(sys_id: str, **overrides: str) -> dict[str, Any]:
    row = {
        "sys_id": sys_id,
        "stage": "completed",
        "sla": "sla-p1-resolution",
        "task": "1c741bd70b2322007518478d83673af3",
        "task.number": "INC0000060",
        "task.business_service": SERVICE,
        "task.priority": "1",
        "start_time": "2016-12-12 15:19:57",
        "end_time": "2016-12-13 21:43:14",
        "has_breached": "false",
        "duration": "1970-01-02 06:23:17",
    }
    row.update(overrides)
    return row


def test_good_record_maps_to_the_review_model(servicenow_mapping: SystemMapping) -> None:
    """A stock task_sla row becomes an SlaRecord with UTC times, priority name and elapsed time."""
    result = servicenow_mapping.map("sla_record", [task_sla("a")])
    (record,) = result.of(SlaRecord)
    assert record.task_ref == "INC0000060"
    assert record.service_key == SERVICE
    assert record.priority == "1 - Critical"
    assert record.start == datetime(2016, 12, 12, 15, 19, 57, tzinfo=UTC)
    assert record.elapsed == timedelta(days=1, hours=6, minutes=23, seconds=17)
    assert record.breached is False
    assert record.source is not None and record.source.table == "task_sla"


def test_bad_records_are_skipped_and_the_rest_mapped(servicenow_mapping: SystemMapping) -> None:
    """A bad date and a missing required value skip two records; the other two still map."""
    rows = [
        task_sla("good-1"),
        task_sla("bad-date", start_time="31/12/2016 25:00"),
        task_sla("no-start", start_time=""),
        task_sla("good-2", end_time=""),
    ]
    with capture_logs() as logs:
        result = servicenow_mapping.map("sla_record", rows)
    assert [r.key for r in result.of(SlaRecord)] == ["good-1", "good-2"]
    assert result.skipped == [
        SkippedRecord(
            stream="sla_record",
            record_id="bad-date",
            field="start",
            reason="not a date and time: '31/12/2016 25:00'",
            service_key=SERVICE,
        ),
        SkippedRecord(
            stream="sla_record",
            record_id="no-start",
            field="start",
            reason="required value missing (start_time)",
            service_key=SERVICE,
        ),
    ]
    events = [e for e in logs if e["event"] == "mapping.record_skipped"]
    assert [(e["record_id"], e["field"]) for e in events] == [
        ("bad-date", "start"),
        ("no-start", "start"),
    ]


def test_an_unknown_flag_value_skips_the_record(servicenow_mapping: SystemMapping) -> None:
    """has_breached "maybe" is no boolean: the record is skipped naming the field."""
    result = servicenow_mapping.map("sla_record", [task_sla("odd", has_breached="maybe")])
    assert result.entities == []
    assert result.skipped[0].field == "breached"
    assert "not a boolean" in result.skipped[0].reason


def test_review_model_rejections_are_skips(servicenow_mapping: SystemMapping) -> None:
    """A CSAT score below zero passes the transform, not the review model: skipped, not raised."""
    row = {
        "sys_id": "c1",
        "actual_value": "-2",
        "source_id": "inc",
        "slm_service_id": SERVICE,
        "sys_created_on": "2025-01-02 10:00:00",
    }
    result = servicenow_mapping.map("csat_response", [row])
    assert result.entities == []
    assert result.skipped[0].field == "score"
    assert result.skipped[0].service_key == SERVICE


def test_filtered_records_are_excluded_not_skipped(servicenow_mapping: SystemMapping) -> None:
    """Cancelled SLAs have no outcome: excluded by the shipped filter, not reported as gaps."""
    result = servicenow_mapping.map("sla_record", [task_sla("x", stage="cancelled")])
    assert (result.entities, result.skipped, result.excluded) == ([], [], 1)


def test_a_record_without_id_is_skipped(servicenow_mapping: SystemMapping) -> None:
    """A row with no sys_id cannot be named in a review: skipped as '<no id>'."""
    result = servicenow_mapping.map("sla_record", [task_sla("")])
    assert result.skipped[0].record_id == "<no id>"


def test_a_number_that_is_not_text_skips_the_record(servicenow_mapping: SystemMapping) -> None:
    """A knowledge article whose number is not text is skipped, naming the field."""
    row = {"sys_id": "kb1", "number": 7, "short_description": "x", "slm_kind": "knowledge"}
    result = servicenow_mapping.map("material", [row])
    assert result.skipped[0].field == "number"


def test_a_material_keeps_its_number_apart_from_its_title(
    servicenow_mapping: SystemMapping,
) -> None:
    """A problem maps to its number (the pack's link text) and its title without the number;
    its source names the table and sys_id its link is built from."""
    sys_id = "d7296d02c0a801670085e737da016e70"
    row = {"sys_id": sys_id, "number": "PRB0000011", "short_description": "Mail queue stalls",
           "slm_kind": "problem", "sys_class_name": "problem", "active": "true"}  # fmt: skip
    (material,) = servicenow_mapping.map("material", [row]).of(Material)
    assert (material.number, material.title) == ("PRB0000011", "Mail queue stalls")
    assert material.source is not None
    assert (material.source.table, material.source.id) == ("problem", sys_id)


def test_jsm_cycle_with_epoch_and_null_stop(jira_mapping: SystemMapping) -> None:
    """An ongoing JSM cycle (stop null, start in epoch ms) maps with no stop."""
    row = {
        "key": "ITSD-1:customfield_10030:1",
        "issue_key": "ITSD-1",
        "field_id": "customfield_10030",
        "agreement_key": "customfield_10030:14400000:High:b:abc",
        "cycle": "ongoing",
        "goal_ms": 14400000,
        "elapsed_ms": 5640000,
        "breached": False,
        "start": 1444479323000,
        "stop": None,
        "priority": "High",
        "service_id": "b:abc",
        "updated": "2015-10-10T19:15:23.000+0700",
    }
    (record,) = jira_mapping.map("sla_record", [row]).of(SlaRecord)
    assert record.stop is None
    assert record.agreement_key == "customfield_10030:14400000:High:b:abc"
    assert record.start == datetime(2015, 10, 10, 12, 15, 23, tzinfo=UTC)
