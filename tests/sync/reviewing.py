"""Settings for end-to-end tests that review the first services of a sandbox's estate."""

from __future__ import annotations

from pathlib import Path

from config import Settings
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine
from sync.state import open_store


def reviewing_settings(
    site: Sandbox, tmp_path: Path, *, reviews: int, index_lag_seconds: float
) -> Settings:
    """The demo settings on `site` (state under `tmp_path / "data"`), no clock skew, the given
    Jira index lag, selecting the first `reviews` services by key (found by a dry run)."""
    probe = demo_settings(site, tmp_path / "probe")
    probe_store = open_store(probe.sync.resolved_state_url())
    services = Engine.from_settings(probe, probe_store).run_once(dry_run=True).build.services
    probe_store.close()
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    settings.jira.index_lag_seconds = index_lag_seconds
    settings.review.selection = sorted(s.key for s in services)[:reviews]
    return settings
