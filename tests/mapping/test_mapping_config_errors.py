"""Mapping files: the shipped ones load; every mistake fails at load naming file, line and key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from config import ConfigError
from mapping import ENTITIES, load_mappings, shipped_mapping_path

Write = Callable[[str], Path]

GOOD_SLA = """\
version: 1
system: servicenow
entities:
  sla_record:
    id: sys_id
    fields:
      key: sys_id
      agreement_key: sla
      task_ref: task
      start: {source: start_time, transform: datetime}
      breached: {source: has_breached, transform: boolean}
"""


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_mappings("servicenow", path)
    return str(caught.value)


def test_shipped_mappings_load() -> None:
    """The shipped ServiceNow mapping maps every entity; the Jira one all JSM has."""
    servicenow = load_mappings("servicenow")
    jira = load_mappings("jira")
    assert set(servicenow.entities) == set(ENTITIES)
    assert set(jira.entities) == set(ENTITIES) - {"material", "component"}
    assert shipped_mapping_path("jira").name == "jira.yaml"


def test_an_admin_file_with_one_entity_loads(write_mapping: Write) -> None:
    """A minimal file mapping only sla_record loads; unmapped entities map to nothing."""
    mappings = load_mappings("servicenow", write_mapping(GOOD_SLA))
    assert mappings.has("sla_record") and not mappings.has("service")
    assert mappings.map("service", [{"sys_id": "x"}]).entities == []


def test_connector_learns_the_fields_to_request(servicenow_mapping: object) -> None:
    """The compiled sla_record mapping lists the task_sla columns it reads, dot-walks included."""
    mappings = load_mappings("servicenow")
    fields = mappings.entity("sla_record").source_fields
    assert {"sys_id", "sla", "task.business_service", "task.priority", "start_time"} <= set(fields)


@pytest.mark.parametrize(
    ("replace", "by", "line", "expected"),
    [
        (
            "      task_ref: task\n",
            "      task_reference: task\n",
            9,
            "entities.sla_record.fields.task_reference: sla_record has no field 'task_reference'",
        ),
        (
            "      task_ref: task\n",
            "      task_ref: task[\n",
            9,
            "entities.sla_record.fields.task_ref.source: invalid JMESPath expression",
        ),
        (
            "transform: boolean}",
            "transform: bool}",
            11,
            "entities.sla_record.fields.breached.transform: unknown transform 'bool' (known: "
            "boolean,",
        ),
        (
            "      task_ref: task\n",
            "",
            6,
            "entities.sla_record.fields: sla_record.task_ref is required by the review model",
        ),
        (
            "  sla_record:\n",
            "  sla_records:\n",
            4,
            "entities.sla_records: unknown entity 'sla_records' (known: service",
        ),
        (
            "version: 1\n",
            "version: 1\ntimezone: Mars/Olympus\n",
            2,
            "timezone: unknown timezone 'Mars/Olympus'",
        ),
        (
            "system: servicenow\n",
            "system: jira\n",
            2,
            "system: this file maps 'jira', not 'servicenow'",
        ),
        (
            "    id: sys_id\n",
            "    id: sys_id\n    filters: stage\n",
            6,
            "entities.sla_record.filters: unknown key 'filters' (known: id, table, filter, fields)",
        ),
        (
            "    id: sys_id\n",
            "    id: sys_id\n    filter: 'stage =='\n",
            6,
            "entities.sla_record.filter: invalid JMESPath expression",
        ),
        ("    id: sys_id\n", "", 4, "entities.sla_record.id: must be a JMESPath expression"),
        (
            "{source: start_time, transform: datetime}",
            "{source: start_time, transfrom: datetime}",
            10,
            "entities.sla_record.fields.start.transfrom: unknown key 'transfrom'",
        ),
        (
            "{source: start_time, transform: datetime}",
            "{transform: datetime}",
            10,
            "entities.sla_record.fields.start: needs a source",
        ),
        (
            "{source: start_time, transform: datetime}",
            "{source: start_time, transform: datetime, required: false}",
            10,
            "entities.sla_record.fields.start: sla_record.start cannot be optional without a "
            "default",
        ),
    ],
)
def test_config_errors_name_file_line_and_key(
    write_mapping: Write, replace: str, by: str, line: int, expected: str
) -> None:
    """Each mistake in a mapping file fails the load naming file:line, the key and the problem."""
    assert replace in GOOD_SLA
    path = write_mapping(GOOD_SLA.replace(replace, by))
    message = load_error(path)
    assert f"{path}:{line}: {expected}" in message
    assert "hint: see mapping/README.md" in message


def test_bad_transform_args_name_the_arg_line(write_mapping: Write) -> None:
    """An unknown arg is reported on its own line under args."""
    text = GOOD_SLA.replace(
        "      breached: {source: has_breached, transform: boolean}\n",
        "      breached:\n        source: has_breached\n        transform: enum\n"
        "        args:\n          valuez: {a: 1}\n",
    )
    message = load_error(write_mapping(text))
    assert ":15: entities.sla_record.fields.breached.args.valuez: enum: unknown arg 'valuez'" in (
        message
    )


def test_bad_args_in_a_transform_list_name_the_step(write_mapping: Write) -> None:
    """In a list of transforms, a bad arg is reported under its step."""
    text = GOOD_SLA.replace(
        "      task_ref: task\n",
        "      task_ref:\n        source: task\n        transform:\n"
        "          - regex: {pattern: 'no group'}\n",
    )
    message = load_error(write_mapping(text))
    assert ":12: entities.sla_record.fields.task_ref.transform.0.regex.pattern: regex: " in message


def test_every_mistake_is_listed_at_once(write_mapping: Write) -> None:
    """Two mistakes in one file give two lines in one error, so one edit round fixes both."""
    text = GOOD_SLA.replace("task_ref: task", "task_rev: task").replace("boolean}", "bool}")
    message = load_error(write_mapping(text))
    assert "task_rev" in message and "unknown transform 'bool'" in message


def test_invalid_yaml_names_the_line(write_mapping: Write) -> None:
    """A YAML syntax error names the file and line."""
    path = write_mapping(GOOD_SLA.replace("      key: sys_id\n", "      key: [sys_id\n"))
    assert f"{path}:" in load_error(path)


def test_missing_file_and_unknown_system(tmp_path: Path) -> None:
    """A missing mapping file and an unknown source system are config errors, not tracebacks."""
    assert "file not found" in load_error(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="unknown source system 'remedy'"):
        load_mappings("remedy")


def test_asking_for_an_unmapped_entity(write_mapping: Write) -> None:
    """Asking a file for an entity it does not map says which ones it maps."""
    mappings = load_mappings("servicenow", write_mapping(GOOD_SLA))
    with pytest.raises(
        ConfigError, match=r"no mapping for entity 'service' \(mapped: sla_record\)"
    ):
        mappings.entity("service")
