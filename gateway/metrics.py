"""Prometheus metrics (prometheus-client), one registry per app so tests can run many apps.

Counters and histograms are updated where things happen; gauges that describe state (devices by
state, messages by status, queue depth, webhook backlog) are read from the session manager and
the store when /metrics is scraped, so they can never drift from the truth.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Histogram(
            "wagate_http_request_duration_seconds", "HTTP requests by route template",
            ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.devices = Gauge("wagate_devices", "Devices by state", ["state"], registry=r)
        self.messages = Gauge("wagate_messages", "Messages by status", ["status"], registry=r)
        self.queue_depth = Gauge("wagate_queue_depth",
                                 "Messages waiting for their device (queued or sending)",
                                 registry=r)
        self.webhook_backlog = Gauge("wagate_webhook_backlog", "Webhook deliveries pending",
                                     registry=r)
        self.webhook_attempts = Counter("wagate_webhook_attempts", "Webhook delivery attempts",
                                        ["outcome"], registry=r)
