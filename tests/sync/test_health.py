"""The health surface: liveness, readiness after cycles, Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from connectors import RetryEvent
from sync.health import Health, HealthServer
from sync.metrics import Metrics


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[str, Health, Metrics, _Clock]]:
    clock = _Clock()
    health = Health(interval_seconds=60, clock=clock)
    metrics = Metrics()
    server = HealthServer(health, metrics, host="127.0.0.1", port=0).start()
    yield f"http://127.0.0.1:{server.port}", health, metrics, clock
    server.stop()


def test_healthz_is_alive_before_any_cycle(served: tuple[str, Health, Metrics, _Clock]) -> None:
    """/healthz answers 200 as soon as the process serves; /readyz is 503 until a cycle succeeds."""
    url, *_ = served
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    ready = requests.get(f"{url}/readyz", timeout=5)
    assert ready.status_code == 503
    assert "no successful cycle" in ready.text


def test_readyz_follows_cycles_and_target_reachability(
    served: tuple[str, Health, Metrics, _Clock],
) -> None:
    """Ready after a good cycle; not ready when the target is down or cycles stop succeeding."""
    url, health, _, clock = served
    health.cycle_finished(True, reachable=True)
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    health.cycle_finished(False, reachable=False, error="jira: ConnectionError")
    down = requests.get(f"{url}/readyz", timeout=5)
    assert down.status_code == 503
    assert "jira: ConnectionError" in down.text
    health.cycle_finished(True, reachable=True)
    clock.now += 121
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 503


def test_metrics_expose_calls_retries_and_tickets(
    served: tuple[str, Health, Metrics, _Clock],
) -> None:
    """Counters fed by the observers appear in the Prometheus exposition."""
    url, _, metrics, _ = served
    metrics.on_call("jira", 201)
    metrics.on_retry(RetryEvent("jira", "create", 1, 0.5, 429, "RateLimited"))
    metrics.tickets.labels(action="created").inc(3)
    text = requests.get(f"{url}/metrics", timeout=5).text
    assert 'slm_sync_api_calls_total{status="201",system="jira"} 1.0' in text
    assert 'slm_sync_api_retries_total{status="429",system="jira"} 1.0' in text
    assert 'slm_sync_tickets_total{action="created"} 3.0' in text


class _Page:
    def __init__(self) -> None:
        self.html: str | None = None


def test_portfolio_page_is_served_read_only() -> None:
    """`/` and `/portfolio` serve the last rendered page (503 before one) to GET and HEAD only,
    under a policy that allows inline styles and nothing else; without a page source, 404."""
    page = _Page()
    server = HealthServer(
        Health(interval_seconds=60), Metrics(), host="127.0.0.1", port=0, portfolio=page
    ).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        assert requests.get(f"{url}/", timeout=5).status_code == 503
        page.html = "<!DOCTYPE html><title>p</title>"
        for path in ("/", "/portfolio"):
            answer = requests.get(url + path, timeout=5)
            assert answer.status_code == 200 and answer.text == page.html
            assert answer.headers["Content-Type"].startswith("text/html")
            assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert requests.head(f"{url}/", timeout=5).status_code == 200
        for method in ("POST", "PUT", "DELETE"):
            refused = requests.request(method, f"{url}/portfolio", timeout=5)
            assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
    finally:
        server.stop()
    bare = HealthServer(Health(interval_seconds=60), Metrics(), host="127.0.0.1", port=0).start()
    try:
        assert requests.get(f"http://127.0.0.1:{bare.port}/", timeout=5).status_code == 404
    finally:
        bare.stop()
