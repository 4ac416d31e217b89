"""Settings -> a ready `TableClient` and `Guard`: URL, auth, TLS, timeouts, pacing, retries."""

from __future__ import annotations

from config import ConfigError, Settings
from connectors.http import instrument, new_session, timeouts
from connectors.pacing import Pacer
from connectors.retry import RetryPolicy
from connectors.servicenow.client import SYSTEM, PysnowTableClient
from connectors.servicenow.guard import Guard


def build_client(settings: Settings) -> PysnowTableClient:
    """A pysnow-backed client for `settings.servicenow` (bearer token wins over basic auth)."""
    servicenow = settings.servicenow
    base_url = servicenow.base_url()
    if base_url is None:
        raise ConfigError(
            "servicenow: neither servicenow.instance nor servicenow.url is set",
            hint="set servicenow.instance (e.g. acme) or servicenow.url",
        )
    session = instrument(new_session(settings.http), SYSTEM)
    if servicenow.oauth_token is not None:
        token = servicenow.oauth_token.get_secret_value()
        session.headers["Authorization"] = f"Bearer {token}"
    elif servicenow.username and servicenow.password is not None:
        session.auth = (servicenow.username, servicenow.password.get_secret_value())
    else:
        raise ConfigError(
            "servicenow: no credentials (username + password, or oauth_token)",
            hint="set SLM_SYNC_SERVICENOW__PASSWORD or SLM_SYNC_SERVICENOW__OAUTH_TOKEN "
            "(or a secret file of the same name)",
        )
    return PysnowTableClient(base_url, session, timeouts(settings.http))


def build_guard(settings: Settings, pacer: Pacer | None = None) -> Guard:
    """Pacing, concurrency and retries as configured."""
    servicenow, http = settings.servicenow, settings.http
    return Guard(
        pacer=pacer or Pacer(servicenow.requests_per_second, burst=servicenow.concurrency),
        retry=RetryPolicy(max_attempts=http.max_attempts, max_seconds=http.max_retry_seconds),
        concurrency=servicenow.concurrency,
    )
