"""Sandbox fixtures: one shared sandbox per test session, and a factory for custom knobs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from sandbox import Sandbox

# A fixed clock for the seeded estate: the same data whatever day the tests run.
FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)


class ServiceNowClient:
    """A keep-alive requests session against the ServiceNow stand-in (Basic auth)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.auth = ("integration.user", "secret")

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.base_url + path, params=params, timeout=10)

    def rows(self, table: str, **params: Any) -> list[dict[str, Any]]:
        response = self.get(f"/api/now/table/{table}", **params)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["result"]
        return result

    def post(self, path: str, body: Any, **params: Any) -> requests.Response:
        return self.session.post(self.base_url + path, json=body, params=params, timeout=10)

    def patch(self, path: str, body: Any) -> requests.Response:
        return self.session.patch(self.base_url + path, json=body, timeout=10)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The shared sandbox (seed 7, default sizes, cloud Jira, clock fixed at FIXED_NOW).
    Tests that write must only touch records they created themselves."""
    with Sandbox(seed=7, now=FIXED_NOW) as running:
        yield running


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox with custom arguments (small estate by default); stopped after the test."""
    started: list[Sandbox] = []

    def start(**kwargs: Any) -> Sandbox:
        options: dict[str, Any] = {"services": 3, "sla_records": 200, "now": FIXED_NOW}
        options.update(kwargs)
        running = Sandbox(**options).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def sn(sandbox: Sandbox) -> ServiceNowClient:
    """A client for the shared sandbox's ServiceNow stand-in."""
    return ServiceNowClient(sandbox.servicenow_url)


@pytest.fixture
def sn_client() -> Callable[[Sandbox], ServiceNowClient]:
    """A client for any sandbox (e.g. one from `sandbox_factory`)."""
    return lambda running: ServiceNowClient(running.servicenow_url)
