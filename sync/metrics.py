"""Prometheus metrics of the daemon (one registry per process, exposed on /metrics).

Counters are fed by observers: connectors report API calls and retries through
`connectors.http.observe_calls` and `RetryPolicy.observers`; the engine reports cycles,
tickets and records read; the webhook receiver reports each answer (`on_webhook`), and every
refused request is counted by source and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from connectors import RetryEvent
from sync.webhooks import REJECTIONS


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
        self.webhook_rejections = Counter(
            "slm_sync_webhook_rejections",
            "Webhook requests refused, by source (jira, servicenow) and reason (the outcome:"
            " bad_signature, unsupported_media_type, duplicate, ...)",
            ["source", "reason"],
            registry=self.registry,
        )
        self.duplicate_tickets = Gauge(
            "slm_sync_duplicate_tickets",
            "Idempotency keys carried by more than one open ticket (the duplicate audit)",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "slm_sync_last_success_timestamp_seconds",
            "Unix time the last successful cycle finished",
            registry=self.registry,
        )
        self.lease_stretch = Gauge(
            "slm_sync_lease_longest_stretch_seconds",
            "Longest time a held work lease went without a chance to renew; above half of"
            " sync.lease_seconds the lease is too short (warning lease.too_short)",
            registry=self.registry,
        )

    def on_call(self, system: str, status: int) -> None:
        """Observer for connectors.http.observe_calls."""
        self.api_calls.labels(system=system, status=str(status)).inc()

    def on_retry(self, event: RetryEvent) -> None:
        """Observer for RetryPolicy.observers."""
        self.retries.labels(system=event.system, status=str(event.status or "error")).inc()

    def on_webhook(self, source: str, status: int, outcome: str) -> None:
        """Observer for WebhookReceiver: counts every refused request."""
        if outcome in REJECTIONS:
            self.webhook_rejections.labels(source=source, reason=outcome).inc()

    def exposition(self) -> bytes:
        """The text exposition format for /metrics."""
        return generate_latest(self.registry)
