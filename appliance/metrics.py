"""The server's Prometheus metrics (names prefixed hcc_), on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "hcc_http_requests_total", "API requests", ["method", "route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "hcc_http_request_duration_seconds", "API request latency", ["route"], registry=r
        )
        self.events_applied = Counter(
            "hcc_events_applied_total", "Node events applied to the store", registry=r
        )
        self.commands_published = Counter(
            "hcc_commands_published_total", "Commands the outbox relay published", registry=r
        )
        self.outbox_pending = Gauge(
            "hcc_outbox_pending", "Commands committed but not yet published", registry=r
        )
        self.nodes_online = Gauge("hcc_nodes_online", "Nodes with a recent heartbeat", registry=r)
        self.tasks = Gauge("hcc_tasks", "Tasks by state", ["state"], registry=r)
        self.sse_clients = Gauge("hcc_sse_clients", "Open event streams", registry=r)
