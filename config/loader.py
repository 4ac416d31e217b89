"""Loading settings and the RACI matrix; every mistake becomes a ConfigError that says where.

"Where" is the source that set the value, by precedence: the secret file, else the environment
variable, else `file:line` in the YAML file. Secret values never appear in a message; a URL
appears with its password masked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource

from config.errors import ConfigError
from config.settings import DEFAULT_SECRETS_DIR, ENV_PREFIX, Settings, env_name, secret_paths
from config.validation import directory_problem, redact_url, sqlite_file
from config.yamlfile import KeyPath, YamlDocument, dotted, load_yaml
from review import RaciError, RaciMatrix

# Looked for in this order when neither --config nor SLM_SYNC_CONFIG names a file.
DEFAULT_CONFIGS = (Path("config/slm-sync.yaml"), Path("/etc/slm-sync/slm-sync.yaml"))
CONFIG_ENV = ENV_PREFIX + "CONFIG"
SECRETS_DIR_ENV = ENV_PREFIX + "SECRETS_DIR"
SETTINGS_HINT = (
    "fix the value where it is set (the file line, environment variable or secret file named "
    "above); config/slm-sync.example.yaml documents every key"
)
SecretFiles = dict[tuple[str, str], Path]  # (section, field) -> the file that sets it


@dataclass(frozen=True)
class Credential:
    """A credential the configured systems need, and where it could come from."""

    path: str
    env: str
    secret_file: Path
    empty: tuple[str, ...] = ()  # sources that hold an empty value for it (it counts as unset)

    def advice(self) -> str:
        """`jira.api_token is missing: set ... or write it to the file ...`, empties named."""
        text = f"{self.path} is missing: set {self.env} or write it to the file {self.secret_file}"
        if self.empty:
            text += f" ({' and '.join(self.empty)} empty; an empty value counts as not set)"
        return text


@dataclass(frozen=True)
class _Origin:
    """What can say where a value came from: secret files, the environment, the YAML file."""

    document: YamlDocument | None
    secret_files: SecretFiles

    def where(self, loc: KeyPath) -> str:
        """`secret file F`, `environment VAR` or `file:line` for the value at `loc`."""
        names = tuple(str(part) for part in loc)
        if names[:2] in self.secret_files:
            return f"secret file {self.secret_files[(names[0], names[1])]}"
        environment = {name.upper() for name in os.environ}
        for depth in range(len(names), 0, -1):  # a nested value may come with its parent (JSON)
            if env_name(names[:depth]) in environment:
                return f"environment {env_name(names[:depth])}"
        if self.document is not None:
            return self.document.where(loc)
        return "settings"


class _BlankSecretsUnset(PydanticBaseSettingsSource):
    """The environment, minus secrets set to an empty string: those count as not set."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Delegates to the environment source (pydantic-settings calls `__call__`)."""
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        data = self.inner()
        for section, name in secret_paths():
            values = data.get(section)
            if isinstance(values, dict) and _blank(values.get(name)):
                data[section] = {k: v for k, v in values.items() if k != name}
        return data


def secrets_dir() -> Path:
    """Where secret files are read from (`SLM_SYNC_SECRETS_DIR`, default /run/secrets)."""
    return Path(os.environ.get(SECRETS_DIR_ENV) or DEFAULT_SECRETS_DIR)


def load_settings(path: Path | None = None) -> Settings:
    """Settings from defaults < YAML `path` < environment < secret files.

    `path=None` takes `SLM_SYNC_CONFIG`, else the first of DEFAULT_CONFIGS that exists, else
    runs on defaults and environment alone.
    """
    document: YamlDocument | None = None
    path = config_path(path)
    if path is not None:
        document = load_yaml(path)
        if not isinstance(document.data, dict):
            raise ConfigError(f"{document.path}: the top level must be a mapping of sections")
    data: dict[str, Any] = dict(document.data) if document else {}
    files = _secret_files(secrets_dir())
    secrets = _read_secret_files(files)
    origin = _Origin(document, {key: files[key] for key in _set_paths(secrets)})

    class _WithSecretFiles(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # First wins: secret files, then the environment, then the YAML file (init data).
            environment = _BlankSecretsUnset(settings_cls, env_settings)
            return (InitSettingsSource(settings_cls, secrets), environment, init_settings)

    try:
        settings = _WithSecretFiles(**data)
    except ValidationError as exc:
        raise _explain(exc, origin) from None
    problems = [f"{origin.where(loc)}: {problem}" for loc, problem in _path_problems(settings)]
    if problems:
        raise ConfigError("\n".join(problems), hint=SETTINGS_HINT)
    return settings


def config_path(explicit: Path | None = None) -> Path | None:
    """The settings file to read: explicit, then SLM_SYNC_CONFIG, then a default that exists."""
    if explicit is not None:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return next((p for p in DEFAULT_CONFIGS if p.exists()), None)


def _secret_files(directory: Path) -> SecretFiles:
    """Secret files present in `directory`, named like their environment variable (any case)."""
    if os.environ.get(SECRETS_DIR_ENV) and directory.exists() and not directory.is_dir():
        raise ConfigError(
            f"environment {SECRETS_DIR_ENV}: {directory} is not a directory",
            hint="point it at the directory that holds the secret files (default /run/secrets)",
        )
    if not directory.is_dir():
        return {}
    present = {p.name.lower(): p for p in directory.iterdir() if p.is_file()}
    return {
        (section, name): present[env_name((section, name)).lower()]
        for section, name in secret_paths()
        if env_name((section, name)).lower() in present
    }


def _read_secret_files(files: SecretFiles) -> dict[str, Any]:
    """The secret files' values; they win over everything else. An empty file sets nothing."""
    found: dict[str, Any] = {}
    for (section, name), file in files.items():
        try:
            value = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"secret file {file} cannot be read ({type(exc).__name__})",
                hint="the file must be readable by the user slm-sync runs as (uid 10001 in "
                "the container)",
            ) from None
        if value:
            found.setdefault(section, {})[name] = value
    return found


def _set_paths(nested: dict[str, Any]) -> list[tuple[str, str]]:
    return [(section, name) for section, values in nested.items() for name in values]


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _explain(exc: ValidationError, origin: _Origin) -> ConfigError:
    secret = set(secret_paths())
    problems = []
    for error in exc.errors():
        loc: KeyPath = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        key = dotted(loc)
        if error["type"] == "extra_forbidden":
            what = f"unknown key {key!r}"
            fix = "remove it or check its spelling against config/slm-sync.example.yaml"
        elif error["type"] == "value_error":  # our validators: the message names value and fix
            what, fix = f"{key}: {error.get('ctx', {}).get('error', error['msg'])}", ""
        else:
            what = f"{key}: {error['msg'].lower()}"
            fix = "set it" if error["type"] == "missing" else f"got {error.get('input')!r}"
            if tuple(str(p) for p in loc[:2]) in secret and error["type"] != "missing":
                fix = "the value is a secret and not shown"
        problems.append(redact_url(f"{origin.where(loc)}: {what}" + (f" ({fix})" if fix else "")))
    return ConfigError("\n".join(problems), hint=SETTINGS_HINT)


def _path_problems(settings: Settings) -> list[tuple[KeyPath, str]]:
    """Paths that cannot work: a data directory that is a file, a missing CA bundle ..."""
    problems: list[tuple[KeyPath, str]] = []
    data_dir = directory_problem(settings.sync.data_dir)
    if data_dir:
        problems.append(
            (
                ("sync", "data_dir"),
                f"sync.data_dir: {data_dir} (give a directory, or a path "
                "slm-sync may create; the container uses /var/lib/slm-sync)",
            )
        )
    # The default SQLite file under data_dir is covered by the check above.
    database = sqlite_file(settings.sync.resolved_state_url()) if settings.sync.state_url else None
    if database is not None:
        problem = (
            f"{database} is a directory"
            if database.is_dir()
            else directory_problem(database.parent)
        )
        if problem:
            problems.append(
                (
                    ("sync", "state_url"),
                    f"sync.state_url: {settings.sync.redacted_state_url()!r}: "
                    f"{problem} (give a file path whose directory exists or can be created)",
                )
            )
    bundle = settings.http.ca_bundle
    if bundle is not None and not bundle.exists():
        problems.append(
            (
                ("http", "ca_bundle"),
                f"http.ca_bundle: {bundle} does not exist (give the path "
                "of a PEM file, or a directory of certificates)",
            )
        )
    return problems


def required_credentials(settings: Settings) -> list[Credential]:
    """Credentials the configured source and target need but do not have."""
    directory = secrets_dir()
    systems = {settings.sync.source, settings.sync.target}
    missing: list[tuple[str, str]] = []
    if "servicenow" in systems:
        sn = settings.servicenow
        if sn.oauth_token is None and sn.password is None:
            missing.append(("servicenow", "password"))
    if "jira" in systems:
        jira = settings.jira
        if jira.api_token is None and jira.personal_access_token is None and jira.password is None:
            missing.append(
                (
                    "jira",
                    "personal_access_token" if jira.deployment == "datacenter" else "api_token",
                )
            )
    return [
        Credential(
            path=f"{section}.{name}",
            env=env_name((section, name)),
            secret_file=directory / env_name((section, name)).lower(),
            empty=_empty_sources((section, name), directory),
        )
        for section, name in missing
    ]


def _empty_sources(path: tuple[str, str], directory: Path) -> tuple[str, ...]:
    """Where an empty value was given for `path`: it was probably meant to hold the secret."""
    env = env_name(path)
    found = [
        f"environment {name}"
        for name, value in os.environ.items()
        if name.upper() == env and _blank(value)
    ]
    file = directory / env.lower()
    try:
        if file.is_file() and not file.read_text(encoding="utf-8").strip():
            found.append(f"secret file {file}")
    except (OSError, UnicodeDecodeError):
        pass  # unreadable: _read_secret_files already said so
    return tuple(found)


def missing_endpoints(settings: Settings) -> list[str]:
    """Messages for systems the configuration uses but gives no address for."""
    systems = {settings.sync.source, settings.sync.target}
    problems = []
    if "servicenow" in systems and settings.servicenow.base_url() is None:
        problems.append(
            "servicenow.instance or servicenow.url is required (sync uses ServiceNow); "
            f"or set {env_name(('servicenow', 'url'))}"
        )
    if "jira" in systems and not settings.jira.url:
        problems.append(
            f"jira.url is required (sync uses Jira); or set {env_name(('jira', 'url'))}"
        )
    return problems


def load_raci(path: Path | None = None) -> RaciMatrix:
    """The RACI matrix from `path`, or the seed matrix shipped with slm-sync."""
    if path is None:
        shipped = resources.files("config").joinpath("raci.yaml")
        with resources.as_file(shipped) as shipped_path:
            return _raci_from(load_yaml(shipped_path))
    return _raci_from(load_yaml(path))


def _raci_from(document: YamlDocument) -> RaciMatrix:
    try:
        return RaciMatrix.from_data(document.data)
    except RaciError as exc:
        raise ConfigError(
            f"{document.where(exc.path)}: {exc}",
            hint="compare with the seed matrix in the README (RACI section)",
        ) from None
