"""Every Jira request a full sync makes (review tickets as target, JSM as source, Cloud) is an
operation of Atlassian's official specs: the Cloud platform spec for `/rest/api/3` and
`/rest/atlassian-connect`, the JSM spec for `/rest/servicedeskapi`; REST v2 only for
`serverInfo` (asked before the deployment is known). The stand-in runs as unkind as real Jira
(lag on every field, the integration user west of UTC)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine
from sync.state import open_store

from .conftest import FIXED_NOW, REFERENCE

JIRA_SPEC = REFERENCE / "jira" / "jira-platform-v3.swagger-v3.v3.2025-12.json"
JSM_SPEC = REFERENCE / "jsm" / "jsm-servicedeskapi.openapi.2022-01.json"
V2_ALLOWED = {"GET /rest/api/2/serverInfo"}
_PLACEHOLDER = re.compile(r"<(?:[a-z]+:)?[a-z_]+>|\{[A-Za-z_]+\}")


def _operations(path: Path) -> set[str]:
    """ "METHOD /path/{}" for every operation of a spec (placeholders reduced to `{}`)."""
    if not path.is_file():
        pytest.skip(f"{path} is not present beside the project")
    spec = json.loads(path.read_text())
    return {
        f"{method.upper()} {_PLACEHOLDER.sub('{}', route)}"
        for route, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "delete", "patch"}
    }


@pytest.fixture
def unkind_cloud() -> Iterator[Sandbox]:
    running = Sandbox(seed=5, services=4, sla_records=600, now=FIXED_NOW, index_lag_ms=150).start()
    running.jira.realism.update({"lag_everything": True, "time_zone": "America/Los_Angeles"})
    yield running
    running.stop()


def _routes(site: Sandbox) -> dict[str, int]:
    body = requests.get(f"{site.jira_url}/__sandbox/requests", timeout=5).json()
    return dict(body["by_route"])


def test_every_request_of_a_full_sync_is_an_operation_of_the_official_spec(
    unkind_cloud: Sandbox, tmp_path: Path
) -> None:
    """Two full syncs (JSM source, Jira target) against Cloud: each route the stand-in
    counted is a path and method of the official specs, and none went unmatched."""
    known = _operations(JIRA_SPEC) | _operations(JSM_SPEC)
    settings = demo_settings(unkind_cloud, tmp_path, source="jira")
    settings.jira.index_lag_seconds = 0.2
    settings.jira.add_watchers = True
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        probe = Engine.from_settings(settings, store).run_once(dry_run=True)
        settings.review.selection = [c.service_key for c in probe.build.candidates[:2]]
        for _ in range(2):
            Engine.from_settings(settings, store).run_once()
    finally:
        store.close()
    routes = _routes(unkind_cloud)
    written = [r for r in routes if r.split()[0] in ("POST", "PUT") and "search" not in r]
    expected = {
        "POST /rest/api/3/issue/bulk",
        "POST /rest/api/3/issue/<key>/attachments",
        "POST /rest/api/3/issue/<key>/watchers",
    }
    assert expected <= set(written), routes
    assert "POST /rest/api/3/search/jql" in routes
    outside = [
        route for route in routes if route not in V2_ALLOWED and _normalized(route) not in known
    ]
    assert outside == [], f"requests outside the official spec: {outside}"


def _normalized(route: str) -> str:
    method, _, path = route.partition(" ")
    return f"{method} {_PLACEHOLDER.sub('{}', path)}"


def test_route_normalization_matches_spec_templates() -> None:
    """The stand-in's rule syntax and the spec's templates reduce to the same form, and a
    route the spec lacks does not (so the check above can fail)."""
    assert _normalized("POST /rest/api/3/issue/<key>/watchers") == (
        "POST /rest/api/3/issue/{}/watchers"
    )
    assert _normalized("GET /rest/api/3/attachment/content/<int:attachment_id>") == (
        "GET /rest/api/3/attachment/content/{}"
    )
    known: Any = _operations(JIRA_SPEC)
    assert "POST /rest/api/3/issue/{}/watchers" in known
    assert "GET /jsm/api/{}/v1/services" not in known
    assert _normalized("GET <unmatched>") not in known
