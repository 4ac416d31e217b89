"""`slm-sync doctor` checks the mapping and the connector's fields against sys_dictionary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from mapping import shipped_mapping_path
from sandbox import Sandbox
from sync.doctor import run_doctor

MAPPING_CHECK = "mapping fields exist (sys_dictionary)"
SHIPPED_TARGET = "      target_percent: {source: slm_target_percentage,"
CUSTOM_TARGET = "      target_percent: {source: u_target_percentage,"
CONNECTOR_CHECK = "connector fields exist (sys_dictionary)"


pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.fixture(scope="module")
def stock() -> Iterator[Sandbox]:
    """A stock instance (no `u_` fields) with glide.invalid_query.returns_no_rows on."""
    with Sandbox(seed=4, services=3, sla_records=50) as running:
        running.knobs.update({"invalid_query_returns_no_rows": True})
        yield running


def settings(sandbox: Sandbox, tmp_path: Path, **sync: Any) -> Settings:
    return Settings.model_validate(
        {
            "servicenow": {"url": sandbox.servicenow_url, "username": "integration.user",
                           "password": "sn-password-value", "requests_per_second": 10_000},
            "jira": {"url": "http://127.0.0.1:9", "email": "a@example.com", "api_token": "t"},
            "sync": {"state_url": f"sqlite:///{tmp_path / 'state.db'}", **sync},
        }
    )  # fmt: skip


def servicenow_checks(sandbox: Sandbox, tmp_path: Path, **sync: Any) -> dict[str, Any]:
    checks = run_doctor(settings(sandbox, tmp_path, **sync))
    return {c.name: c for c in checks if c.system == "servicenow"}


def test_shipped_mapping_passes_on_a_stock_instance(stock: Sandbox, tmp_path: Path) -> None:
    """The shipped mapping and the connector's queries name only fields a stock instance has."""
    checks = servicenow_checks(stock, tmp_path)
    assert checks[MAPPING_CHECK].ok, checks[MAPPING_CHECK]
    assert checks[CONNECTOR_CHECK].ok, checks[CONNECTOR_CHECK]
    assert "commitments found" in checks[CONNECTOR_CHECK].detail


def test_a_custom_field_the_instance_lacks_fails_with_file_line_and_field(
    stock: Sandbox, tmp_path: Path
) -> None:
    """A mapping reading u_target_percentage (the old shipped default) fails the check, naming
    the file, the line of the entry and the field, with the fix."""
    shipped = shipped_mapping_path("servicenow").read_text()
    marker = "      target_percent: {source: slm_target_percentage,"
    assert marker in shipped
    custom = tmp_path / "servicenow.yaml"
    custom.write_text(
        shipped.replace(marker, "      target_percent: {source: u_target_percentage,")
    )
    line = next(i for i, text in enumerate(custom.read_text().splitlines(), 1)
                if "u_target_percentage" in text)  # fmt: skip
    check = servicenow_checks(stock, tmp_path, mapping_file=str(custom))[MAPPING_CHECK]
    assert not check.ok
    assert (
        f"{custom}:{line}: entities.agreement.fields.target_percent: 'u_target_percentage' "
        "is not a field of contract_sla"
    ) in check.detail
    assert check.fix is not None and str(custom) in check.fix


def test_the_same_mapping_passes_on_an_instance_that_has_the_field(tmp_path: Path) -> None:
    """Custom fields stay possible: where the instance has them, the check passes."""
    shipped = shipped_mapping_path("servicenow").read_text()
    custom = tmp_path / "servicenow.yaml"
    custom.write_text(shipped.replace(SHIPPED_TARGET, CUSTOM_TARGET))
    with Sandbox(seed=4, services=3, sla_records=50) as customised:
        customised.knobs.update({"servicenow_custom_fields": True})
        check = servicenow_checks(customised, tmp_path, mapping_file=str(custom))[MAPPING_CHECK]
    assert check.ok, check


def test_an_unreadable_dictionary_names_the_grant(stock: Sandbox, tmp_path: Path) -> None:
    """If sys_dictionary answers nothing (its ACLs hide every row from the integration user:
    here every query on it matches nothing), the check fails and says what to grant."""
    original = stock.servicenow.store.is_field
    try:
        stock.servicenow.store.is_field = (  # type: ignore[method-assign]
            lambda table, path: False if table == "sys_dictionary" else original(table, path)
        )
        check = servicenow_checks(stock, tmp_path)[MAPPING_CHECK]
    finally:
        stock.servicenow.store.is_field = original  # type: ignore[method-assign]
    assert not check.ok
    assert check.fix is not None and "sys_dictionary" in check.fix
