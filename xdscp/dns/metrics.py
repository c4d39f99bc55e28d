"""The DNS source's Prometheus metrics, registered in the metrics registry the caller passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class DnsMetrics:
    """`xdscp_dns_*` metrics, labelled by declared service."""

    def __init__(self, metrics_registry: CollectorRegistry) -> None:
        self.failures = Counter(
            "xdscp_dns_failures",
            "Failed DNS lookups by service and reason "
            "(servfail, refused, timeout, nxdomain, nodata, error).",
            ["service", "reason"],
            registry=metrics_registry,
        )
        self.lookups = Counter(
            "xdscp_dns_lookups",
            "DNS lookups made, by service.",
            ["service"],
            registry=metrics_registry,
        )
        self.up = Gauge(
            "xdscp_dns_service_up",
            "1 while the service's last lookup succeeded, else 0 (last good endpoints kept).",
            ["service"],
            registry=metrics_registry,
        )
        self.endpoints = Gauge(
            "xdscp_dns_endpoints",
            "Endpoints published for the service.",
            ["service"],
            registry=metrics_registry,
        )
        self.publishes = Counter(
            "xdscp_dns_publishes",
            "Service sets published by the DNS source.",
            registry=metrics_registry,
        )
