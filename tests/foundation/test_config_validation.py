"""Configuration mistakes that used to pass `check-config`: each is exit 2 naming where it is set.

Every test goes through the real command line (`sync.cli.main`), as an admin would meet it.
"""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest
import structlog

from config import load_settings
from config.yamlfile import load_yaml
from sync.cli import main
from sync.logs import configure_logging

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
DB_PASSWORD = "db-pass-7731"


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLM_SYNC_SERVICENOW__PASSWORD", "sn-password-123")
    monkeypatch.setenv("SLM_SYNC_JIRA__API_TOKEN", "jira-token-456")


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty secrets directory that slm-sync reads (SLM_SYNC_SECRETS_DIR)."""
    directory = tmp_path / "secrets"
    directory.mkdir()
    monkeypatch.setenv("SLM_SYNC_SECRETS_DIR", str(directory))
    return directory


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slm-sync.yaml"
    path.write_text(text)
    return path


def _check(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["check-config", "--config", str(path), *extra])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- duplicate keys ------------------------------------------------------------------------------


@pytest.mark.usefixtures("credentials")
def test_a_second_section_is_an_error_naming_both_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `sync:` section no longer replaces the first silently: exit 2, both lines."""
    path = _config(tmp_path, GOOD + "sync:\n  interval_seconds: 60\nsync:\n  source: servicenow\n")
    code, _, err = _check(path, capsys)
    assert code == 2
    assert f"{path}:12: duplicate key 'sync', already set at line 10" in err
    assert "hint:" in err


@pytest.mark.usefixtures("credentials")
def test_a_repeated_key_inside_a_section_names_its_dotted_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`jira.project` twice: exit 2 naming `jira.project` and lines 7 and 8."""
    text = GOOD.replace("  email: slm@acme.example\n", "  project: OPS\n  project: SLM\n")
    code, _, err = _check(_config(tmp_path, text), capsys)
    assert code == 2
    assert "duplicate key 'jira.project', already set at line 6" in err
    assert "slm-sync.yaml:7" in err


@pytest.mark.usefixtures("credentials")
def test_the_same_key_in_two_list_entries_is_not_a_duplicate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each LT member has its own `email`: that is two mappings, not a repeated key."""
    text = (
        GOOD + "    lt_members:\n      - {email: a@acme.example}\n      - {email: b@acme.example}\n"
    )
    code, out, _ = _check(_config(tmp_path, text), capsys, "--json")
    assert code == 0
    assert json.loads(out)["lt_members"] == 2


def test_repeated_merge_keys_are_merges_not_duplicates(tmp_path: Path) -> None:
    """`<<: *a` twice in one mapping merges two anchors; it is not reported as a duplicate."""
    path = tmp_path / "anchors.yaml"
    path.write_text("a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: *a\n  <<: *b\n  z: 3\n")
    assert load_yaml(path).data["c"] == {"x": 1, "y": 2, "z": 3}


@pytest.mark.usefixtures("credentials")
def test_a_repeated_key_in_the_raci_file_names_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], project_root: Path
) -> None:
    """raci.yaml goes through the same reader: a repeated `scope` is exit 2 with its path."""
    raci = tmp_path / "raci.yaml"
    shipped = (project_root / "config" / "raci.yaml").read_text()
    raci.write_text(
        shipped.replace("    scope: cycle\n", "    scope: cycle\n    scope: service\n", 1)
    )
    path = _config(tmp_path, GOOD.replace("review:\n", f"review:\n  raci_file: {raci}\n"))
    code, _, err = _check(path, capsys)
    assert code == 2
    assert f"{raci}:" in err
    assert "duplicate key 'activities[0].scope'" in err


@pytest.mark.usefixtures("credentials")
def test_a_repeated_field_in_a_mapping_file_names_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], project_root: Path
) -> None:
    """A mapping with `owner` twice under one entity's fields: exit 2, file, both lines."""
    mapping = tmp_path / "servicenow.yaml"
    shipped = (project_root / "config" / "mappings" / "servicenow.yaml").read_text()
    marker = "      owner: owned_by                      # the Service Level Manager\n"
    mapping.write_text(shipped.replace(marker, marker + "      owner: u_other\n", 1))
    code, _, err = _check(_config(tmp_path, GOOD + f"sync:\n  mapping_file: {mapping}\n"), capsys)
    assert code == 2
    assert f"{mapping}:" in err
    assert "duplicate key 'entities.service.fields.owner', already set at line" in err


@pytest.mark.parametrize("command", [["doctor"], ["plan"], ["sync", "--once"]])
def test_every_command_that_reads_settings_refuses_duplicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """Not only check-config: doctor, plan and sync stop with exit 2 before doing anything."""
    path = _config(tmp_path, "jira:\n  url: https://x.example\njira:\n  project: OPS\n")
    assert main([*command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: duplicate key 'jira', already set at line 1" in err
    assert "Traceback" not in err


# -- empty secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_token_in_the_environment_is_a_missing_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, empty: str
) -> None:
    """SLM_SYNC_JIRA__API_TOKEN="" (an unset compose variable) fails, saying it is empty."""
    monkeypatch.setenv("SLM_SYNC_SERVICENOW__PASSWORD", "sn-password-123")
    monkeypatch.setenv("SLM_SYNC_JIRA__API_TOKEN", empty)
    code, _, err = _check(_config(tmp_path, GOOD), capsys)
    assert code == 2
    assert "jira.api_token is missing" in err
    assert "environment SLM_SYNC_JIRA__API_TOKEN empty" in err
    assert "slm_sync_jira__api_token" in err


def test_an_empty_secret_file_is_a_missing_secret(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    secrets: Path,
) -> None:
    """An empty (or newline-only) secret file does not count as a password."""
    monkeypatch.setenv("SLM_SYNC_JIRA__API_TOKEN", "jira-token-456")
    (secrets / "slm_sync_servicenow__password").write_text("\n")
    code, _, err = _check(_config(tmp_path, GOOD), capsys)
    assert code == 2
    assert "servicenow.password is missing" in err
    assert f"secret file {secrets / 'slm_sync_servicenow__password'} empty" in err


def test_an_empty_secret_file_does_not_hide_the_variable(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    secrets: Path,
) -> None:
    """An empty file sets nothing, so the environment's token (lower precedence) still counts."""
    monkeypatch.setenv("SLM_SYNC_SERVICENOW__PASSWORD", "sn-password-123")
    monkeypatch.setenv("SLM_SYNC_JIRA__API_TOKEN", "jira-token-456")
    (secrets / "slm_sync_jira__api_token").write_text("")
    code, _, _ = _check(_config(tmp_path, GOOD), capsys)
    assert code == 0
    settings = load_settings(_config(tmp_path, GOOD))
    assert settings.jira.api_token is not None
    assert settings.jira.api_token.get_secret_value() == "jira-token-456"


def test_an_empty_variable_does_not_hide_the_file_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty variable sets nothing either: a token written in the YAML file still counts."""
    monkeypatch.setenv("SLM_SYNC_JIRA__API_TOKEN", "")
    settings = load_settings(
        _config(tmp_path, GOOD.replace("jira:\n", "jira:\n  api_token: t0k\n"))
    )
    assert settings.jira.api_token is not None
    assert settings.jira.api_token.get_secret_value() == "t0k"


def test_a_secret_of_the_wrong_type_is_reported_without_its_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token given as a list is a type error naming the key and line, never the value."""
    monkeypatch.setenv("SLM_SYNC_SERVICENOW__PASSWORD", "sn-password-123")
    text = GOOD.replace("jira:\n", "jira:\n  api_token: [hunter2-token]\n")
    code, _, err = _check(_config(tmp_path, text), capsys)
    assert code == 2
    assert "slm-sync.yaml:5: jira.api_token" in err
    assert "hunter2-token" not in err


# -- URLs ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "'not a url' is not a URL"),
        ("acme.atlassian.net", "write it with its scheme, e.g. https://acme.atlassian.net"),
        ("ftp://acme.example", "has scheme 'ftp'; only http and https"),
        ("https://", "has no host name"),
        ("https://acme.example:port", "has an invalid port"),
    ],
)
def test_a_bad_jira_url_names_file_line_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, says: str
) -> None:
    """jira.url must be an http(s) URL with a host: exit 2 at its line, with the value."""
    text = GOOD.replace("https://acme.atlassian.net", f'"{url}"')
    code, _, err = _check(_config(tmp_path, text), capsys)
    assert code == 2
    assert "slm-sync.yaml:5: jira.url:" in err
    assert says in err


@pytest.mark.usefixtures("credentials")
def test_a_bad_servicenow_url_from_the_environment_names_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value set by environment is reported against the variable."""
    monkeypatch.setenv("SLM_SYNC_SERVICENOW__URL", "acme.service-now.com")
    code, _, err = _check(_config(tmp_path, GOOD), capsys)
    assert code == 2
    assert "environment SLM_SYNC_SERVICENOW__URL: servicenow.url:" in err


@pytest.mark.usefixtures("credentials")
def test_a_url_as_instance_name_says_to_use_the_url_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """servicenow.instance is the name alone; a full address belongs in servicenow.url."""
    text = GOOD.replace("instance: acme", "instance: https://acme.service-now.com")
    code, _, err = _check(_config(tmp_path, text), capsys)
    assert code == 2
    assert "slm-sync.yaml:2: servicenow.instance:" in err
    assert "servicenow.url" in err


@pytest.mark.usefixtures("credentials")
def test_a_url_with_a_password_is_refused_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Credentials inside jira.url: refused, and the password is masked in the message."""
    text = GOOD.replace("https://acme.atlassian.net", "https://bot:pa55word-x@acme.atlassian.net")
    code, _, err = _check(_config(tmp_path, text), capsys)
    assert code == 2
    assert "https://bot:***@acme.atlassian.net" in err
    assert "pa55word-x" not in err


# -- the state database --------------------------------------------------------------------------


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"mysql://slm:{DB_PASSWORD}@db/slm", "database 'mysql' with driver 'mysqldb'"),
        (f"postgresql+psycopg2://slm:{DB_PASSWORD}@db/slm", "driver 'psycopg2' is not supported"),
        (f"postgresql+asyncpg://slm:{DB_PASSWORD}@db/slm", "driver 'asyncpg' is not supported"),
        (f"oracle+nosuch://slm:{DB_PASSWORD}@db/slm", "unknown database 'oracle+nosuch'"),
        ("not a url", "is not a database URL"),
        ("sqlite://", "in-memory database"),
        ("sqlite:///:memory:", "in-memory database"),
    ],
)
def test_a_state_url_the_store_cannot_use_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, says: str
) -> None:
    """Only SQLite files and PostgreSQL through psycopg work; the password is never shown."""
    code, out, err = _check(_config(tmp_path, GOOD + f'sync:\n  state_url: "{url}"\n'), capsys)
    assert code == 2
    assert "slm-sync.yaml:11: sync.state_url:" in err
    assert says in err
    assert DB_PASSWORD not in err + out


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql+psycopg://slm:{DB_PASSWORD}@db/slm", "postgresql+psycopg://slm:***@db/slm"),
        (f"postgresql://slm:{DB_PASSWORD}@db/slm", "postgresql+psycopg://slm:***@db/slm"),
        (f"postgresql+psycopg://slm@db/slm?password={DB_PASSWORD}", "?password=***"),
        ("postgresql+psycopg://?service=slm_sync", "postgresql+psycopg://?service=slm_sync"),
    ],
)
def test_check_config_json_shows_the_state_url_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, shown: str
) -> None:
    """Accepted URLs are shown with the password as *** (bare postgresql:// gets psycopg)."""
    path = _config(tmp_path, GOOD + f'sync:\n  state_url: "{url}"\n')
    code, out, err = _check(path, capsys, "--json")
    assert code == 0
    assert shown in json.loads(out)["state_url"]
    assert DB_PASSWORD not in out + err
    code, out, err = _check(path, capsys)
    assert code == 0
    assert DB_PASSWORD not in out + err


@pytest.mark.usefixtures("credentials")
def test_the_state_url_may_come_from_a_secret_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], secrets: Path
) -> None:
    """/run/secrets/slm_sync_sync__state_url sets sync.state_url, like the other secrets."""
    (secrets / "slm_sync_sync__state_url").write_text(
        f"postgresql+psycopg://slm:{DB_PASSWORD}@db/x\n"
    )
    code, out, _ = _check(_config(tmp_path, GOOD), capsys, "--json")
    assert code == 0
    assert json.loads(out)["state_url"] == "postgresql+psycopg://slm:***@db/x"


@pytest.mark.usefixtures("credentials")
def test_a_bad_state_url_in_a_secret_file_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], secrets: Path
) -> None:
    """The error says which secret file set the bad value, and masks its password."""
    file = secrets / "slm_sync_sync__state_url"
    file.write_text(f"mysql://slm:{DB_PASSWORD}@db/x")
    code, out, err = _check(_config(tmp_path, GOOD), capsys)
    assert code == 2
    assert f"secret file {file}: sync.state_url: 'mysql://slm:***@db/x'" in err
    assert DB_PASSWORD not in out + err


@pytest.mark.usefixtures("credentials")
def test_a_state_store_that_cannot_open_fails_the_sync_with_exit_1_and_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid URL whose database is down: a runtime failure (exit 1) naming the masked URL."""
    url = f"postgresql+psycopg://slm:{DB_PASSWORD}@127.0.0.1:{_closed_port()}/slm"
    monkeypatch.setenv("SLM_SYNC_SYNC__STATE_URL", url)
    assert main(["plan", "--config", str(_config(tmp_path, GOOD))]) == 1
    err = capsys.readouterr().err
    assert "state store failed" in err
    assert "postgresql+psycopg://slm:***@127.0.0.1" in err
    assert DB_PASSWORD not in err
    assert "Traceback" not in err


def test_the_state_url_password_is_masked_in_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log line that carries the state URL shows the database, not the password."""
    monkeypatch.setenv("SLM_SYNC_SYNC__STATE_URL", f"postgresql+psycopg://slm:{DB_PASSWORD}@db/x")
    settings = load_settings(_config(tmp_path, GOOD))
    stream = io.StringIO()
    configure_logging(fmt="json", secrets=settings.secret_values(), stream=stream)
    structlog.get_logger("test").info("state.opening", url=settings.sync.resolved_state_url())
    assert "postgresql+psycopg://slm:***@db/x" in stream.getvalue()
    assert DB_PASSWORD not in stream.getvalue()
    assert DB_PASSWORD not in repr(settings)


# -- directories and files -----------------------------------------------------------------------


@pytest.mark.usefixtures("credentials")
def test_a_data_dir_that_is_a_file_is_exit_2_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sync.data_dir pointing at a regular file fails check-config, not the first sync."""
    blocker = tmp_path / "state-file"
    blocker.write_text("")
    code, _, err = _check(_config(tmp_path, GOOD + f"sync:\n  data_dir: {blocker}\n"), capsys)
    assert code == 2
    assert f"slm-sync.yaml:11: sync.data_dir: {blocker} exists and is not a directory" in err


@pytest.mark.usefixtures("credentials")
def test_a_data_dir_below_a_file_from_the_environment_names_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory that could never be created (its parent is a file): exit 2, the variable."""
    blocker = tmp_path / "state-file"
    blocker.write_text("")
    monkeypatch.setenv("SLM_SYNC_SYNC__DATA_DIR", str(blocker / "data"))
    code, _, err = _check(_config(tmp_path, GOOD), capsys)
    assert code == 2
    assert "environment SLM_SYNC_SYNC__DATA_DIR: sync.data_dir:" in err
    assert f"cannot be created: {blocker} is a file" in err


@pytest.mark.usefixtures("credentials")
def test_a_data_dir_that_does_not_exist_yet_is_fine_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config accepts a directory the daemon will create, and writes nothing itself."""
    data = tmp_path / "var" / "slm"
    code, _, _ = _check(_config(tmp_path, GOOD + f"sync:\n  data_dir: {data}\n"), capsys)
    assert code == 0
    assert not data.exists()


@pytest.mark.usefixtures("credentials")
def test_a_sqlite_state_url_below_a_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An explicit SQLite file whose directory cannot exist fails with the state_url line."""
    blocker = tmp_path / "state-file"
    blocker.write_text("")
    text = GOOD + f"sync:\n  state_url: sqlite:///{blocker}/state.db\n"
    code, _, err = _check(_config(tmp_path, text), capsys)
    assert code == 2
    assert "slm-sync.yaml:11: sync.state_url:" in err
    assert "exists and is not a directory" in err


@pytest.mark.usefixtures("credentials")
def test_a_missing_ca_bundle_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """http.ca_bundle must exist: requests would otherwise fail every call at run time."""
    text = GOOD + f"http:\n  ca_bundle: {tmp_path / 'nope.pem'}\n"
    code, _, err = _check(_config(tmp_path, text), capsys)
    assert code == 2
    assert "slm-sync.yaml:11: http.ca_bundle:" in err


@pytest.mark.usefixtures("credentials")
def test_a_secrets_dir_that_is_a_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLM_SYNC_SECRETS_DIR naming a file would silently read no secret at all."""
    blocker = tmp_path / "secrets-file"
    blocker.write_text("x")
    monkeypatch.setenv("SLM_SYNC_SECRETS_DIR", str(blocker))
    code, _, err = _check(_config(tmp_path, GOOD), capsys)
    assert code == 2
    assert "environment SLM_SYNC_SECRETS_DIR" in err
