"""ServiceNow connector fixtures: a module-scoped sandbox, settings for it, no-wait retries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from config import Settings
from connectors import Pacer, set_testing
from connectors.servicenow import ServiceNowSource, ServiceNowTarget, build_guard
from connectors.servicenow.people import PeopleDirectory
from connectors.servicenow.wiring import build_client
from sandbox import Sandbox

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)


@dataclass
class FakeTime:
    """A monotonic clock that sleeping advances: pauses and pacing cost no wall time."""

    now: float = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture(scope="module")
def sn_sandbox() -> Iterator[Sandbox]:
    """One sandbox per test module (seed 7, 12 services, 3000 SLA records, fixed clock)."""
    with Sandbox(seed=7, sla_records=3000, now=FIXED_NOW) as running:
        yield running


@pytest.fixture
def sandbox_small() -> Iterator[Sandbox]:
    """A fresh small sandbox (3 services, 200 SLA records) for tests that change data or knobs."""
    with Sandbox(seed=3, services=3, sla_records=200, now=FIXED_NOW) as running:
        yield running


def settings_for(sandbox: Sandbox, **servicenow: Any) -> Settings:
    """Settings pointing at `sandbox`'s ServiceNow, with basic auth and fast pacing."""
    section: dict[str, Any] = {
        "url": sandbox.servicenow_url,
        "username": "integration.user",
        "password": "secret",
        "requests_per_second": 10000,
    }
    section.update(servicenow)
    return Settings(servicenow=section)


@pytest.fixture
def make_source() -> Callable[..., ServiceNowSource]:
    """A source for a sandbox; pacing on a fake clock so 429 pauses cost nothing."""

    def make(sandbox: Sandbox, **servicenow: Any) -> ServiceNowSource:
        settings = settings_for(sandbox, **servicenow)
        fake = FakeTime()
        pacer = Pacer(10000, burst=4, clock=fake.clock, sleep=fake.sleep)
        return ServiceNowSource(
            build_client(settings), settings.servicenow, build_guard(settings, pacer)
        )

    return make


@pytest.fixture
def make_target() -> Callable[..., ServiceNowTarget]:
    """A target for a sandbox (review tasks in vtb_task by default)."""

    def make(sandbox: Sandbox, **servicenow: Any) -> ServiceNowTarget:
        settings = settings_for(sandbox, **servicenow)
        client, guard = build_client(settings), build_guard(settings)
        people = PeopleDirectory(client, guard, settings.servicenow)
        return ServiceNowTarget(client, settings.servicenow, guard, people, sandbox.servicenow_url)

    return make
