"""Loading settings and the RACI matrix; every mistake becomes a ConfigError that says where."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource

from config.errors import ConfigError
from config.settings import DEFAULT_SECRETS_DIR, ENV_PREFIX, Settings, env_name, secret_paths
from config.yamlfile import KeyPath, YamlDocument, load_yaml
from review import RaciError, RaciMatrix

# Looked for in this order when neither --config nor SLM_SYNC_CONFIG names a file.
DEFAULT_CONFIGS = (Path("config/slm-sync.yaml"), Path("/etc/slm-sync/slm-sync.yaml"))
CONFIG_ENV = ENV_PREFIX + "CONFIG"
SECRETS_DIR_ENV = ENV_PREFIX + "SECRETS_DIR"


@dataclass(frozen=True)
class Credential:
    """A credential the configured systems need, and where it could come from."""

    path: str
    env: str
    secret_file: Path


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
    secrets = _read_secret_files(secrets_dir())

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
            return (InitSettingsSource(settings_cls, secrets), env_settings, init_settings)

    try:
        return _WithSecretFiles(**data)
    except ValidationError as exc:
        raise _explain(exc, document) from None


def config_path(explicit: Path | None = None) -> Path | None:
    """The settings file to read: explicit, then SLM_SYNC_CONFIG, then a default that exists."""
    if explicit is not None:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return next((p for p in DEFAULT_CONFIGS if p.exists()), None)


def _read_secret_files(directory: Path) -> dict[str, Any]:
    """Secret files named like their environment variable; they win over everything else."""
    if not directory.is_dir():
        return {}
    present = {p.name.lower(): p for p in directory.iterdir() if p.is_file()}
    found: dict[str, Any] = {}
    for section, name in secret_paths():
        file = present.get(env_name((section, name)).lower())
        if file is not None:
            found.setdefault(section, {})[name] = file.read_text(encoding="utf-8").strip()
    return found


def _explain(exc: ValidationError, document: YamlDocument | None) -> ConfigError:
    problems = []
    for error in exc.errors():
        loc: KeyPath = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        dotted = ".".join(str(p) for p in loc)
        env = env_name(tuple(str(p) for p in loc))
        if error["type"] == "extra_forbidden":
            what = f"unknown key {dotted!r}"
            fix = "remove it or check its spelling against config/slm-sync.example.yaml"
        else:
            what = f"{dotted}: {error['msg'].lower()}"
            fix = f"got {error.get('input')!r}" if error["type"] != "missing" else "set it"
        if env in os.environ:
            where = f"environment {env}"
        elif document is not None and document.line_of(loc):
            where = document.where(loc)
        else:
            where = str(document.path) if document else "settings"
        problems.append(f"{where}: {what} ({fix})")
    return ConfigError(
        "\n".join(problems),
        hint="see config/slm-sync.example.yaml for every key and its type",
    )


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
        )
        for section, name in missing
    ]


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
