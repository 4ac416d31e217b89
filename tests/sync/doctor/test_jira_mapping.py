"""Doctor's JSM mapping check: the fields config/mappings/jira.yaml reads exist on the site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config import JiraSettings
from mapping import shipped_mapping_path
from sync.doctor.jira_mapping import mapping_fields

SITE_FIELDS: list[dict[str, Any]] = [
    {"id": "priority", "name": "Priority", "schema": {"system": "priority"}},
    {"id": "updated", "name": "Updated", "schema": {"system": "updated"}},
    {
        "id": "customfield_10030",
        "name": "Time to resolution",
        "schema": {"custom": "com.atlassian.servicedesk:sd-sla-field"},
    },
    {"id": "customfield_10033", "name": "Affected services", "schema": {"custom": "x:service"}},
    {
        "id": "customfield_10032",
        "name": "Satisfaction",
        "schema": {"custom": "com.atlassian.servicedesk:sd-request-feedback"},
    },
]
JIRA = JiraSettings(url="https://site.example", jsm_project="ITSD")


def _line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line)


def test_the_shipped_mapping_passes_on_a_jsm_site() -> None:
    verdict = mapping_fields(shipped_mapping_path("jira"), SITE_FIELDS, JIRA)
    assert verdict.ok, verdict.detail


def test_a_missing_service_field_names_the_mapping_file_line_and_field() -> None:
    """The site has no "Affected services": each mapping entry reading the service fails, with
    the file and line of that entry and the setting to fix."""
    fields = [f for f in SITE_FIELDS if f["name"] != "Affected services"]
    path = shipped_mapping_path("jira")
    verdict = mapping_fields(path, fields, JIRA)
    assert not verdict.ok
    line = _line_of(path, "service_key: service_id")
    assert f"{path}:{line}: entities.agreement.fields.service_key" in verdict.detail
    assert "'Affected services' (jira.service_field)" in verdict.detail
    assert verdict.fix is not None and "jira.service_field" in verdict.fix


def test_a_source_the_connector_does_not_emit_fails_with_its_line(tmp_path: Path) -> None:
    """A mapping reading a key the JSM connector never emits is named with its line."""
    text = shipped_mapping_path("jira").read_text(encoding="utf-8")
    custom = text.replace(
        "priority: priority\n      service_key", "priority: customfield_1\n      service_key"
    )
    path = tmp_path / "jira.yaml"
    path.write_text(custom, encoding="utf-8")
    verdict = mapping_fields(path, SITE_FIELDS, JIRA)
    assert not verdict.ok
    line = _line_of(path, "priority: customfield_1")
    assert (
        f"{path}:{line}: entities.agreement.fields.priority: reads 'customfield_1'"
        in verdict.detail
    )


def test_no_sla_fields_on_the_site_fails() -> None:
    fields = [f for f in SITE_FIELDS if "sla" not in str(f["schema"])]
    verdict = mapping_fields(shipped_mapping_path("jira"), fields, JIRA)
    assert not verdict.ok and "JSM SLA fields" in verdict.detail
