"""Prometheus metrics of the health checks, created on the metrics registry the plane passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class HealthMetrics:
    """Endpoint verdicts (every replica), transitions and check latency (the checker)."""

    def __init__(self, metrics_registry: CollectorRegistry) -> None:
        self.endpoint_state = Gauge(
            "xdscp_health_endpoint_healthy",
            "Verdict of xdscp's own health checks applied to an endpoint (1 healthy, 0 unhealthy)",
            ["service", "endpoint"], registry=metrics_registry,
        )  # fmt: skip
        self.transitions = Counter(
            "xdscp_health_transitions_total",
            "Verdicts changed by this replica's checks (to: healthy | unhealthy)",
            ["service", "to"], registry=metrics_registry,
        )  # fmt: skip
        self.check_seconds = Histogram(
            "xdscp_health_check_seconds", "One health check, by kind and result (ok | failed)",
            ["kind", "result"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=metrics_registry,
        )  # fmt: skip
        self.checker = Gauge(
            "xdscp_health_checker",
            "1 while this replica runs the health checks (the elected one, or each one without"
            " etcd)", registry=metrics_registry,
        )  # fmt: skip
        self.failed_open = Gauge(
            "xdscp_health_failed_open",
            "Services whose every served endpoint fails its checks, so none is marked",
            registry=metrics_registry,
        )  # fmt: skip
