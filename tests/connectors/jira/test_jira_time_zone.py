"""JQL date literals in the integration user's time zone (Jira reads them as that wall time)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from structlog.testing import capture_logs

from config import Settings
from connectors.jira import JiraClient
from connectors.jira.jql import jql_time

HOST = "https://your-domain.atlassian.net"


def test_jql_time_is_wall_time_in_the_zone() -> None:
    """18:30 UTC is written as 10:30 (PST) for a Los Angeles user; UTC without a zone."""
    moment = datetime(2026, 1, 1, 18, 30, 59, tzinfo=UTC)
    assert jql_time(moment, ZoneInfo("America/Los_Angeles")) == '"2026-01-01 10:30"'
    assert jql_time(moment) == '"2026-01-01 18:30"'
    assert jql_time(datetime(2026, 7, 1, 18, 30), ZoneInfo("America/Los_Angeles")) == (
        '"2026-07-01 11:30"'
    )


def test_time_zone_comes_from_myself_once(
    mocked: Any, example: Callable[..., Any], unit_settings: Callable[..., Settings]
) -> None:
    """The client reads `/myself` once and keeps the user's `timeZone`."""
    me = {**example("GET", "/rest/api/3/myself", "200"), "timeZone": "America/Los_Angeles"}
    mocked.get(f"{HOST}/rest/api/3/myself", json=me)
    settings = unit_settings()
    client = JiraClient.connect(settings.jira, settings.http)
    assert client.time_zone == ZoneInfo("America/Los_Angeles")
    assert client.time_zone == ZoneInfo("America/Los_Angeles")
    assert len(mocked.calls) == 1


def test_unknown_time_zone_falls_back_to_utc_with_a_warning(
    mocked: Any, example: Callable[..., Any], unit_settings: Callable[..., Settings]
) -> None:
    """A zone Python does not know is UTC, and the admin is told."""
    me = {**example("GET", "/rest/api/3/myself", "200"), "timeZone": "Mars/Olympus"}
    mocked.get(f"{HOST}/rest/api/3/myself", json=me)
    settings = unit_settings()
    client = JiraClient.connect(settings.jira, settings.http)
    with capture_logs() as logs:
        assert client.time_zone == UTC
    assert [e["event"] for e in logs] == ["jira.time_zone_unknown"]
