"""Settings: precedence defaults < YAML < environment < secret files, and precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from config import ConfigError, Settings, load_settings, required_credentials


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slm-sync.yaml"
    path.write_text(text)
    return path


def test_defaults_apply_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no file, slm-sync runs on documented defaults (SQLite state in ./data)."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.jira.project == "SLM"
    assert settings.sync.resolved_state_url() == "sqlite:///data/state.db"
    assert settings.servicenow.tables.review_tasks == "vtb_task"


def test_yaml_overrides_defaults(tmp_path: Path) -> None:
    """A key in the file replaces its default; siblings keep theirs."""
    settings = load_settings(_write(tmp_path, "jira:\n  project: OPS\n"))
    assert settings.jira.project == "OPS"
    assert settings.jira.issue_type == "Task"


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SLM_SYNC_JIRA__PROJECT wins over jira.project in the file; other file keys stay."""
    monkeypatch.setenv("SLM_SYNC_JIRA__PROJECT", "ENVPRJ")
    settings = load_settings(_write(tmp_path, "jira:\n  project: OPS\n  issue_type: Story\n"))
    assert settings.jira.project == "ENVPRJ"
    assert settings.jira.issue_type == "Story"


def test_secret_file_overrides_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret file named like the variable wins over the variable and the file."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "slm_sync_jira__api_token").write_text("from-secret-file\n")
    monkeypatch.setenv("SLM_SYNC_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("SLM_SYNC_JIRA__API_TOKEN", "from-env")
    settings = load_settings(_write(tmp_path, "jira:\n  url: https://x.atlassian.net\n"))
    assert settings.jira.api_token is not None
    assert settings.jira.api_token.get_secret_value() == "from-secret-file"
    assert "from-secret-file" not in repr(settings)


def test_unknown_key_names_dotted_path_and_line(tmp_path: Path) -> None:
    """A typo is an error naming file:line and the dotted key, not silently ignored."""
    path = _write(tmp_path, "jira:\n  project: OPS\n  projetc: OPS\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert f"{path}:3" in caught.value.message
    assert "unknown key 'jira.projetc'" in caught.value.message


def test_wrong_type_names_path_expected_type_and_value(tmp_path: Path) -> None:
    """A wrong type says which key, what is expected, and what was given."""
    path = _write(tmp_path, "sync:\n  interval_seconds: often\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = caught.value.message
    assert f"{path}:2" in message
    assert "sync.interval_seconds" in message
    assert "integer" in message
    assert "'often'" in message


def test_wrong_type_from_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value set by environment is reported against the variable, not the file."""
    monkeypatch.setenv("SLM_SYNC_SYNC__INTERVAL_SECONDS", "soon")
    with pytest.raises(ConfigError, match="environment SLM_SYNC_SYNC__INTERVAL_SECONDS"):
        load_settings(_write(tmp_path, "jira:\n  project: OPS\n"))


def test_missing_credentials_name_variable_and_secret_file(tmp_path: Path) -> None:
    """Without credentials, each missing one names its variable and its secret file."""
    settings = load_settings(_write(tmp_path, "sync:\n  source: servicenow\n  target: jira\n"))
    missing = {c.path: c for c in required_credentials(settings)}
    assert set(missing) == {"servicenow.password", "jira.api_token"}
    assert missing["jira.api_token"].env == "SLM_SYNC_JIRA__API_TOKEN"
    assert missing["jira.api_token"].secret_file.name == "slm_sync_jira__api_token"


def _dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _dotted_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_example_file_documents_every_key_and_loads(project_root: Path) -> None:
    """config/slm-sync.example.yaml names every settings key, and is itself valid."""
    example = project_root / "config" / "slm-sync.example.yaml"
    text = example.read_text()
    for dotted in _dotted_keys(Settings):
        leaf = dotted.rsplit(".", 1)[-1]
        assert f" {leaf}:" in text or f"\n{leaf}:" in text, f"{dotted} is not documented"
    load_settings(example)
