"""Typed settings of slm-sync, one section per concern.

Precedence (later wins): defaults < YAML file < environment (`SLM_SYNC_`, nested with `__`) <
secret files. Secret files live in `SLM_SYNC_SECRETS_DIR` (default `/run/secrets`) and are named
like the environment variable they replace, in any case: `slm_sync_jira__api_token`.
An empty or blank secret counts as not set, wherever it comes from. `sync.state_url` is a secret
too (it may hold the database password): shown only through `SyncSettings.redacted_state_url`.
`config/slm-sync.example.yaml` documents every key.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config.validation import instance_name, redact_url, state_url, url_passwords, web_url

ENV_PREFIX = "SLM_SYNC_"
ENV_DELIMITER = "__"
DEFAULT_SECRETS_DIR = Path("/run/secrets")


def blank_is_unset(value: Any) -> Any:
    """An empty or whitespace-only string means "not set" (None), not an empty secret or URL."""
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, SecretStr) and not value.get_secret_value().strip():
        return None
    return value


# A credential: never printed, and "" (an unset variable in compose, an empty file) is no value.
Secret = Annotated[SecretStr | None, BeforeValidator(blank_is_unset)]
OptionalText = Annotated[str | None, BeforeValidator(blank_is_unset)]


class Section(BaseModel):
    """A settings section: unknown keys are errors, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


class HttpSettings(Section):
    """How every connector talks HTTP: timeouts, retries, TLS."""

    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    max_attempts: int = Field(6, ge=1)
    max_retry_seconds: float = Field(120.0, gt=0)
    verify_tls: bool = True
    ca_bundle: Path | None = None


class ServiceNowTables(Section):
    """Table names, for instances that keep services or SLAs elsewhere."""

    services: str = "cmdb_ci_service"
    components: str = "cmdb_ci"
    relations: str = "cmdb_rel_ci"
    people: str = "sys_user"
    agreements: str = "contract_sla"
    sla_records: str = "task_sla"
    csat: str = "asmt_metric_result"
    knowledge: str = "kb_knowledge"
    problems: str = "problem"
    review_tasks: str = "vtb_task"


ServiceNowStream = Literal[
    "service", "component", "relation", "person", "agreement", "sla_record", "csat_response",
    "material",
]  # fmt: skip


class ServiceNowSettings(Section):
    """A ServiceNow instance, as a source of SLA data or a target for review tasks."""

    instance: OptionalText = Field(
        None, description="instance name: 'acme' for acme.service-now.com"
    )
    url: OptionalText = Field(None, description="full base URL; wins over instance")
    public_url: OptionalText = Field(
        None,
        description="base URL people open records at (behind a proxy); default: the API URL",
    )
    username: str | None = None
    password: Secret = None
    oauth_token: Secret = None
    page_size: int = Field(1000, ge=1, le=10000)
    requests_per_second: float = Field(10.0, gt=0)
    concurrency: int = Field(2, ge=1)
    clock_skew_seconds: int = Field(60, ge=0)
    overlap_seconds: int = Field(
        600,
        ge=0,
        description="incremental reads re-read this much behind the cursor (late rows); "
        "rows stored unchanged are dropped",
    )
    relation_depth: int = Field(3, ge=1)
    relation_type: str = Field("Depends on::Used by", description="cmdb_rel_type name walked")
    lookup_batch_size: int = Field(100, ge=1, le=500, description="sys_ids per sys_idIN lookup")
    people_refresh_seconds: int = Field(
        3600,
        ge=0,
        description="how often changed sys_user rows of known people are read (0: every cycle); "
        "people newly named by a service or component are looked up at once",
    )
    batch_reads: bool = Field(
        True,
        description="each cycle's first page of every incremental stream in one REST Batch "
        "API call (/api/now/v1/batch); instances without it are read call by call",
    )
    cmdb_rewalk_seconds: int = Field(
        86400,
        ge=0,
        description="a full relation walk this often (0: never), the safety net behind the "
        "incremental CMDB reads and sys_audit_delete; counted from the last full walk kept in "
        "the state store, across restarts and sync --once runs",
    )
    tables: ServiceNowTables = ServiceNowTables()
    fields: dict[ServiceNowStream, list[str]] = Field(
        default_factory=dict, description="per stream: the field list instead of the default"
    )
    filters: dict[ServiceNowStream, str] = Field(
        default_factory=dict, description="per stream: an encoded query ANDed to every read"
    )
    default_targets: dict[str, float] = Field(
        default_factory=lambda: {"SLA": 95.0, "OLA": 97.0, "Underpinning contract": 99.0},
        description="target % per contract_sla type where no service commitment gives one",
    )

    @field_validator("default_targets")
    @classmethod
    def _percentages(cls, value: dict[str, float]) -> dict[str, float]:
        wrong = [f"{kind}: {target}" for kind, target in value.items() if not 0 < target <= 100]
        if wrong:
            raise ValueError(f"targets are percentages above 0, at most 100 ({', '.join(wrong)})")
        return value

    @field_validator("instance")
    @classmethod
    def _instance_name(cls, value: str | None) -> str | None:
        return None if value is None else instance_name(value)

    @field_validator("url", "public_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        return None if value is None else web_url(value)

    def base_url(self) -> str | None:
        """The instance's base URL, from `url` or `instance`."""
        if self.url:
            return self.url.rstrip("/")
        if self.instance:
            return f"https://{self.instance}.service-now.com"
        return None

    def record_base_url(self) -> str | None:
        """The base URL of links to records people click: `public_url`, else the API's."""
        return self.public_url.rstrip("/") if self.public_url else self.base_url()


class JiraSettings(Section):
    """A Jira Cloud or Data Center site, as the target for review tickets or a JSM source."""

    url: OptionalText = None
    public_url: OptionalText = Field(
        None,
        description="base URL people open issues at (behind a proxy); default: the API URL",
    )
    deployment: Literal["auto", "cloud", "datacenter"] = "auto"
    email: str | None = Field(None, description="Cloud: the account's email for API-token auth")
    api_token: Secret = None
    personal_access_token: Secret = None
    username: str | None = None
    password: Secret = None
    project: str = "SLM"
    issue_type: str = "Task"
    subtask_type: str = "Sub-task"
    accountable_field: str | None = None
    fallback_assignee: str | None = None
    people_cache_seconds: int = Field(
        86400,
        ge=0,
        description="how long a person's Jira account (or its absence) is trusted before the "
        "next ticket for them checks it again (Cloud: user/bulk in batches)",
    )
    add_watchers: bool = False
    requests_per_second: float = Field(10.0, gt=0)
    jsm_project: str | None = None
    done_transition: str = Field("Done", description="transition name that closes a ticket")
    service_field: str = Field(
        "Affected services", description="field id or name holding a JSM request's service"
    )
    satisfaction_field: str | None = Field(
        None, description="CSAT field id or name; default: the site's sd-request-feedback field"
    )
    cloud_id: str | None = Field(None, description="Cloud site id for the JSM services listing")
    services: dict[str, str] = Field(
        default_factory=dict, description="JSM service id -> name, instead of the listing"
    )
    overlap_seconds: int = Field(120, ge=0)
    index_lag_seconds: float = Field(2.0, ge=0)

    @field_validator("url", "public_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        return None if value is None else web_url(value)


class CycleSettings(Section):
    """The review cycle calendar."""

    frequency: Literal["yearly", "half-yearly", "quarterly"] = "yearly"
    start: str = Field("01-15", description="MM-DD the cycle opens each period")

    @field_validator("start")
    @classmethod
    def _month_day(cls, value: str) -> str:
        try:
            date.fromisoformat(f"2024-{value}")
        except ValueError:
            raise ValueError(
                f"{value!r} is not a month and day; expected MM-DD, e.g. 01-15"
            ) from None
        return value


class PersonSettings(Section):
    """A person named in config: email (the cross-system identity) and display name."""

    email: str
    name: str | None = None


class PersonOverride(Section):
    """Where automatic matching by email fails: the person's ids in each system."""

    name: str | None = None
    jira_account_id: str | None = None
    jira_name: str | None = None
    servicenow_sys_id: str | None = None


class RoleHolders(Section):
    """Role holders that no service record names (seed: SLM process owner, catalog owner, LT)."""

    slm_process_owner: PersonSettings | None = None
    service_catalog_owner: PersonSettings | None = None
    lt_members: list[PersonSettings] = []
    default_lt_sponsor: PersonSettings | None = None


class ReviewSettings(Section):
    """How reviews are run: cycle, period, margins, RACI file, role holders."""

    cycle: CycleSettings = CycleSettings()
    period: Literal["since_last_review", "trailing_12_months"] = "trailing_12_months"
    at_risk_margin_percent: float = Field(2.0, ge=0)
    raci_file: Path | None = Field(None, description="default: the seed matrix shipped in config/")
    selection: list[str] = []
    roles: RoleHolders = RoleHolders()
    people: dict[str, PersonOverride] = {}
    policy_url: OptionalText = Field(
        None,
        description="the SLM process policy document, linked from the 'Update process "
        "policies' sub-task",
    )

    @field_validator("policy_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        return None if value is None else web_url(value)


class SyncSettings(Section):
    """The daemon: which systems, how often, where state lives."""

    source: str = Field("servicenow", description="connector plugin: servicenow, jira, ...")
    target: str = Field("jira", description="connector plugin: jira, servicenow, ...")
    mapping_file: Path | None = Field(None, description="default: the source's shipped mapping")
    interval_seconds: int = Field(900, ge=10)
    data_dir: Path = Path("data")
    state_url: Secret = Field(None, description="default: SQLite in data_dir; a secret")
    lease_seconds: float = Field(300.0, gt=0, description="replicas: how long a work lease lasts")
    create_settle_seconds: float = Field(
        60.0,
        gt=0,
        description="how long a create may still land after we stopped waiting for it (the "
        "tools end requests after about 60 s); with 2 x http.read_timeout, quarantines a create "
        "in doubt",
    )
    resolve_duplicates: bool = Field(
        False,
        description="close later tickets carrying the same key as duplicates of the oldest "
        "(linked, noted, never deleted); off: duplicates are only reported",
    )
    ticket_read_margin_seconds: float = Field(
        60.0,
        ge=0,
        description="each cycle reads the tickets changed since the previous read and this far "
        "before it (the target's search index lag; at least jira.index_lag_seconds)",
    )
    ticket_full_read_seconds: float = Field(
        3600.0,
        ge=0,
        description="how often every ticket is read (deletions, moves, label removals, what an "
        "incremental read missed); 0: every cycle",
    )
    http_host: str = Field("127.0.0.1", description="address of /healthz, /readyz, /metrics")
    http_port: int | None = Field(None, ge=0, le=65535, description="off unless set")

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else SecretStr(state_url(value.get_secret_value()))

    def resolved_state_url(self) -> str:
        """The state store URL, password included, for `open_store` only: never print it.

        SQLite under `data_dir` unless `state_url` is set; `redacted_state_url` is for showing.
        """
        if self.state_url is not None:
            return self.state_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'state.db'}"

    def redacted_state_url(self) -> str:
        """The state store URL with its password masked: postgresql+psycopg://slm:***@db/slm."""
        return redact_url(self.resolved_state_url())


class WebhookSettings(Section):
    """Authenticated webhooks on the daemon's HTTP port: a change reaches its ticket now."""

    enabled: bool = Field(False, description="off unless set; needs sync.http_port")
    jira_secret: Secret = Field(None, description="the Jira webhook's secret")
    servicenow_secret: Secret = Field(None, description="the business rule's secret")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger bodies get 413")
    max_skew_seconds: int = Field(300, ge=1, description="older or newer deliveries get 401")
    replay_cache_size: int = Field(10_000, ge=1, description="delivery ids remembered")
    jira_label: str = Field("slm-sync", description="label that marks our tickets")

    @model_validator(mode="after")
    def _secret_when_enabled(self) -> WebhookSettings:
        if self.enabled and self.jira_secret is None and self.servicenow_secret is None:
            raise ValueError(
                "enabled is true but no secret is set: set SLM_SYNC_WEBHOOKS__JIRA_SECRET and/or"
                " SLM_SYNC_WEBHOOKS__SERVICENOW_SECRET (or their secret files)"
            )
        return self


class LoggingSettings(Section):
    """Log level and format (console on a terminal, JSON lines otherwise)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """All settings. Build with `config.load_settings`, which applies the precedence rules."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        case_sensitive=False,
    )

    servicenow: ServiceNowSettings = ServiceNowSettings()
    jira: JiraSettings = JiraSettings()
    sync: SyncSettings = SyncSettings()
    review: ReviewSettings = ReviewSettings()
    logging: LoggingSettings = LoggingSettings()
    http: HttpSettings = HttpSettings()
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="options of connector plugins, by plugin name"
    )
    webhooks: WebhookSettings = WebhookSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins. The YAML file arrives as init arguments, so it sits below the environment;
        # config.loader puts secret files above both.
        return (env_settings, init_settings)

    def secret_values(self) -> list[str]:
        """Every configured secret's value, for the log redactor.

        For `sync.state_url` only the passwords inside it: a logged URL stays recognisable.
        """
        found: list[str] = []
        for section in (self.servicenow, self.jira, self.webhooks):
            for name in type(section).model_fields:
                value = getattr(section, name)
                if isinstance(value, SecretStr) and value.get_secret_value():
                    found.append(value.get_secret_value())
        return found + url_passwords(self.sync.resolved_state_url())


def env_name(path: tuple[str, ...]) -> str:
    """The environment variable that sets a dotted settings path."""
    return ENV_PREFIX + ENV_DELIMITER.join(part.upper() for part in path)


def secret_paths() -> list[tuple[str, str]]:
    """(section, field) of every SecretStr setting."""
    paths: list[tuple[str, str]] = []
    for section_name, section_field in Settings.model_fields.items():
        section_type = section_field.annotation
        if not isinstance(section_type, type) or not issubclass(section_type, BaseModel):
            continue
        for name, field_info in section_type.model_fields.items():
            if "SecretStr" in str(field_info.annotation):
                paths.append((section_name, name))
    return paths
