"""Mapping fixtures: shipped mappings, recorded payloads, a sandbox, a mapping-file writer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mapping import SystemMapping, load_mappings
from sandbox import Sandbox

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def servicenow_mapping() -> SystemMapping:
    """The shipped ServiceNow mapping, compiled."""
    return load_mappings("servicenow")


@pytest.fixture(scope="session")
def jira_mapping() -> SystemMapping:
    """The shipped Jira (JSM) mapping, compiled."""
    return load_mappings("jira")


@pytest.fixture
def recorded_incidents(reference_dir: Path) -> list[dict[str, Any]]:
    """77 real incidents from a ServiceNow developer instance (references as {link, value})."""
    path = reference_dir / "servicenow" / "recorded" / "Table_queryTableByName-default.json"
    rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["result"]
    return rows


@pytest.fixture
def recorded_change_display_all(reference_dir: Path) -> dict[str, Any]:
    """A real change request read with sysparm_display_value=all ({display_value, value})."""
    path = (
        reference_dir
        / "servicenow"
        / "recorded"
        / "ChangeManagement_getNormalChangeRequest-default.json"
    )
    row: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["result"][0]
    return row


@pytest.fixture
def jsm_sla_example(reference_dir: Path) -> dict[str, Any]:
    """Atlassian's official example of GET /rest/servicedeskapi/request/{key}/sla."""
    path = reference_dir / "derived" / "jsm-servicedeskapi-2022-01.response-examples.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        example = json.loads(line)
        if example["path"] == "/rest/servicedeskapi/request/{issueIdOrKey}/sla":
            found: dict[str, Any] = example["example"]
            return found
    raise AssertionError("the JSM SLA example is missing from the reference data")


@pytest.fixture(scope="session")
def mapping_sandbox() -> Iterator[Sandbox]:
    """A small seeded sandbox (seed 7, 6 services, 600 SLA records, fixed clock), read-only."""
    with Sandbox(seed=7, services=6, sla_records=600, now=FIXED_NOW) as running:
        yield running


@pytest.fixture
def write_mapping(tmp_path: Path) -> Callable[[str], Path]:
    """Write a mapping file (YAML text) and return its path."""

    def write(text: str, name: str = "servicenow.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
