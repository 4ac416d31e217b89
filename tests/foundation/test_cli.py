"""`slm-sync --version` and `check-config`: exit codes and messages a user acts on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sync.cli import main

GOOD = """\
servicenow:
  instance: acme
  username: slm-integration
jira:
  url: https://acme.atlassian.net
  email: slm@acme.example
review:
  roles:
    slm_process_owner: {email: bob.black@acme.example, name: Bob Black}
"""


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLM_SYNC_SERVICENOW__PASSWORD", "sn-password-123")
    monkeypatch.setenv("SLM_SYNC_JIRA__API_TOKEN", "jira-token-456")


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "slm-sync.yaml"
    path.write_text(text)
    return str(path)


def test_version_prints_name_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints `slm-sync X.Y.Z` and exits 0."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("slm-sync ")


@pytest.mark.usefixtures("credentials")
def test_good_config_exits_0_and_reports_what_was_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid config: exit 0, JSON summary of the checks, no secret in it."""
    assert main(["check-config", "--config", _config(tmp_path, GOOD), "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out)
    assert summary["raci_activities"] == 7
    assert summary["slm_process_owner"] == "bob.black@acme.example"
    assert "sn-password-123" not in out
    assert "jira-token-456" not in out


def test_bad_yaml_exits_2_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Broken YAML: exit 2, the file and line, no traceback."""
    path = _config(tmp_path, "jira:\n  url: https://x\n  project: [OPS\n")
    assert main(["check-config", "--config", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err
    assert "invalid YAML" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("credentials")
def test_unknown_key_exits_2_with_dotted_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt key: exit 2 naming `section.key` and its line."""
    path = _config(tmp_path, GOOD + "sync:\n  intervall_seconds: 60\n")
    assert main(["check-config", "--config", path]) == 2
    err = capsys.readouterr().err
    assert "sync.intervall_seconds" in err
    assert f"{path}:11" in err


def test_missing_secret_exits_2_naming_env_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No Jira token: exit 2 naming SLM_SYNC_JIRA__API_TOKEN and its secret file."""
    assert main(["check-config", "--config", _config(tmp_path, GOOD)]) == 2
    err = capsys.readouterr().err
    assert "SLM_SYNC_JIRA__API_TOKEN" in err
    assert "slm_sync_jira__api_token" in err
    assert "SLM_SYNC_SERVICENOW__PASSWORD" in err


@pytest.mark.usefixtures("credentials")
def test_broken_raci_file_exits_2_naming_the_activity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], project_root: Path
) -> None:
    """An admin's broken RACI file referenced from settings fails check-config with exit 2."""
    raci = tmp_path / "raci.yaml"
    raci.write_text(
        (project_root / "config" / "raci.yaml").read_text().replace("lt: A/C", "lt: C", 1)
    )
    path = _config(tmp_path, GOOD.replace("review:\n", f"review:\n  raci_file: {raci}\n"))
    assert main(["check-config", "--config", path]) == 2
    err = capsys.readouterr().err
    assert "Schedule service review" in err
    assert "exactly one A" in err


def test_unknown_option_is_a_usage_error_exit_2() -> None:
    """A usage mistake exits 2 through the installed console script, without a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "sync.cli", "check-config", "--no-such-option"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


@pytest.mark.usefixtures("credentials")
def test_broken_mapping_file_exits_2_naming_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], project_root: Path
) -> None:
    """check-config also compiles the source's mapping: an unknown transform is exit 2."""
    mapping = tmp_path / "servicenow.yaml"
    shipped = (project_root / "config" / "mappings" / "servicenow.yaml").read_text()
    mapping.write_text(shipped.replace("transform: duration", "transform: durration", 1))
    path = _config(tmp_path, GOOD + f"sync:\n  mapping_file: {mapping}\n")
    assert main(["check-config", "--config", path]) == 2
    err = capsys.readouterr().err
    assert f"{mapping}:" in err
    assert "durration" in err
