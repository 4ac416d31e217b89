"""Configuration: typed settings, their loader, and the admin-editable YAML shipped beside them.

`raci.yaml` (the seed's RACI matrix) and `mappings/*.yaml` are data; `slm-sync.example.yaml`
documents every settings key. Public surface: import from `config` only. Every layer may
import it; it imports only `review` (the RACI matrix it validates `raci.yaml` into).
"""

from __future__ import annotations

from config.errors import ConfigError
from config.loader import (
    Credential,
    config_path,
    load_raci,
    load_settings,
    missing_endpoints,
    required_credentials,
    secrets_dir,
)
from config.settings import (
    HttpSettings,
    JiraSettings,
    LoggingSettings,
    ReviewSettings,
    ServiceNowSettings,
    Settings,
    SyncSettings,
    WebhookSettings,
    env_name,
)

__all__ = [
    "ConfigError",
    "Credential",
    "HttpSettings",
    "JiraSettings",
    "LoggingSettings",
    "ReviewSettings",
    "ServiceNowSettings",
    "Settings",
    "SyncSettings",
    "WebhookSettings",
    "config_path",
    "env_name",
    "load_raci",
    "load_settings",
    "missing_endpoints",
    "required_credentials",
    "secrets_dir",
]
