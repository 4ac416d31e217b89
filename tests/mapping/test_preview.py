"""`mapping preview`: raw beside mapped, field by field, with errors; as a table and as JSON."""

from __future__ import annotations

import io
import json

from rich.console import Console

from mapping import SystemMapping, preview, preview_as_json, render_preview

ROWS = [
    {
        "sys_id": "ok",
        "stage": "completed",
        "sla": "sla1",
        "task": "t1",
        "task.number": "INC0000060",
        "task.business_service": "svc",
        "task.priority": "2",
        "start_time": "2016-12-12 15:19:57",
        "end_time": "2016-12-13 21:43:14",
        "has_breached": "true",
        "duration": "1970-01-02 06:23:17",
    },
    {"sys_id": "bad", "stage": "completed", "sla": "sla1", "task": "t2", "start_time": "soon"},
    {"sys_id": "gone", "stage": "cancelled"},
]


def test_preview_shows_raw_and_mapped_per_field(servicenow_mapping: SystemMapping) -> None:
    """Each field shows its source, the raw value read and the mapped value."""
    rows = preview(ROWS, servicenow_mapping.entity("sla_record"))
    assert [r.status for r in rows] == ["mapped", "skipped", "excluded"]
    fields = {f.name: f for f in rows[0].fields}
    assert (fields["priority"].source, fields["priority"].raw) == ('"task.priority"', "2")
    assert fields["priority"].mapped == "2 - High"
    assert fields["start"].mapped == "2016-12-12T15:19:57Z"


def test_preview_names_the_failing_field(servicenow_mapping: SystemMapping) -> None:
    """A record that would be skipped shows the reason on the field that failed."""
    rows = preview(ROWS, servicenow_mapping.entity("sla_record"))
    fields = {f.name: f for f in rows[1].fields}
    assert fields["start"].raw == "soon"
    assert fields["start"].error == "not a date and time: 'soon'"
    assert rows[1].mapped is None


def test_preview_json_is_one_serialisable_object(servicenow_mapping: SystemMapping) -> None:
    """--json output: summary counts, and per record raw, mapped, errors and fields."""
    entity = servicenow_mapping.entity("sla_record")
    document = json.loads(json.dumps(preview_as_json(entity, preview(ROWS, entity))))
    assert document["summary"] == {"records": 3, "mapped": 1, "skipped": 1, "excluded": 1}
    first = document["records"][0]
    assert first["mapped"]["elapsed"] == "P1DT6H23M17S"
    assert first["raw"]["task.priority"] == "2"
    assert document["records"][1]["errors"] == {
        "start": "not a date and time: 'soon'",
        "breached": "required value missing (has_breached)",
    }


def test_preview_table_for_people(servicenow_mapping: SystemMapping) -> None:
    """The rich rendering shows each record's status, its fields and a summary line."""
    entity = servicenow_mapping.entity("sla_record")
    out = io.StringIO()
    render_preview(entity, preview(ROWS, entity), Console(file=out, width=200))
    text = out.getvalue()
    assert "sla_record ok: mapped" in text and "sla_record bad: skipped" in text
    assert "not a date and time: 'soon'" in text
    assert "3 record(s): 1 mapped, 1 skipped, 1 excluded by the filter" in text


def test_preview_names_the_fields_the_instance_did_not_return(
    servicenow_mapping: SystemMapping,
) -> None:
    """A row without a field the mapping reads (the instance lacks it, so the Table API left it
    out) lists it as not returned, in the table and in the JSON; derived slm_ fields never."""
    agreement = {  # a stock contract_sla row: no custom field, connector fields added
        "sys_id": "a" * 32, "name": "P1 resolution", "type": "SLA", "target": "resolution",
        "duration": "1970-01-01 04:00:00", "condition": "priority=1",
        "slm_target_percentage": "95", "slm_applies_to": "b" * 32, "slm_commitment_type": "SLA",
    }  # fmt: skip
    entity = servicenow_mapping.entity("agreement")
    (complete,) = preview([agreement], entity)
    assert complete.missing == () and complete.status == "mapped"
    without = {k: v for k, v in agreement.items() if k not in ("duration", "slm_applies_to")}
    (row,) = preview([without], entity)
    assert row.missing == ("duration",)
    assert preview_as_json(entity, [row])["records"][0]["missing_fields"] == ["duration"]
    out = io.StringIO()
    render_preview(entity, [row], Console(file=out, width=200))
    assert "not returned by the instance: duration" in out.getvalue()
