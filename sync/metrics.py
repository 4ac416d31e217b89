"""Prometheus metrics of the daemon (one registry per process, exposed on /metrics).

Counters are fed by observers: connectors report API calls and retries through
`connectors.http.observe_calls` and `RetryPolicy.observers`; the engine reports cycles,
tickets and records read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from connectors import RetryEvent


@dataclass
class Metrics:
    """The daemon's counters and gauges, on a private registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.cycles = Counter(
            "slm_sync_cycles", "Sync cycles run, by outcome", ["status"], registry=self.registry
        )
        self.tickets = Counter(
            "slm_sync_tickets",
            "Tickets handled, by action (created, updated, unchanged, failed)",
            ["action"],
            registry=self.registry,
        )
        self.api_calls = Counter(
            "slm_sync_api_calls",
            "HTTP calls to ITSM tools, by system and status code",
            ["system", "status"],
            registry=self.registry,
        )
        self.retries = Counter(
            "slm_sync_api_retries",
            "Retries of transient failures, by system and status code",
            ["system", "status"],
            registry=self.registry,
        )
        self.records_read = Counter(
            "slm_sync_records_read",
            "Source records read, by stream",
            ["stream"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "slm_sync_last_success_timestamp_seconds",
            "Unix time the last successful cycle finished",
            registry=self.registry,
        )

    def on_call(self, system: str, status: int) -> None:
        """Observer for connectors.http.observe_calls."""
        self.api_calls.labels(system=system, status=str(status)).inc()

    def on_retry(self, event: RetryEvent) -> None:
        """Observer for RetryPolicy.observers."""
        self.retries.labels(system=event.system, status=str(event.status or "error")).inc()

    def exposition(self) -> bytes:
        """The text exposition format for /metrics."""
        return generate_latest(self.registry)
