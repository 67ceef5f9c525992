"""The node's Prometheus metrics (own registry, names prefixed hcc_node_)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200)
_LAG_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600, 3600)


class NodeMetrics:
    """Small label sets: command/step kind and outcome only."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.bytes_moved = Counter(
            "hcc_node_bytes_moved", "Bytes moved by steps (export, send, import)", ["kind"],
            registry=r,
        )  # fmt: skip
        self.step_duration = Histogram(
            "hcc_node_step_duration_seconds", "Wall time of finished steps", ["kind", "outcome"],
            buckets=_DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_lag = Histogram(
            "hcc_node_queue_lag_seconds", "Command timestamp to delivery on this node",
            buckets=_LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.commands = Counter(
            "hcc_node_commands", "Commands received", ["type", "outcome"], registry=r
        )
        self.steps_running = Gauge("hcc_node_steps_running", "Steps running now", registry=r)
        self.events_pending = Gauge(
            "hcc_node_events_pending", "Events journaled, not yet confirmed by the broker",
            registry=r,
        )  # fmt: skip
        self.heartbeats = Counter("hcc_node_heartbeats", "Heartbeats published", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
