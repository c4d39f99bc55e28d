"""Prometheus metrics of the xDS server, created on the metrics registry the caller passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from xdscp.cache import RESOURCE_TYPES, TypeUrl


class XdsMetrics:
    """Streams, pushes, ACKs, NACKs and push-to-ACK latency, per resource type."""

    def __init__(self, metrics_registry: CollectorRegistry) -> None:
        self.connected_streams = Gauge(
            "xdscp_connected_streams", "Open xDS streams", ["client"], registry=metrics_registry
        )
        # opened - closed (summed over reasons) = connected, per client kind
        self.streams_opened = Counter(
            "xdscp_streams_opened", "xDS streams opened (first request received)", ["client"],
            registry=metrics_registry,
        )  # fmt: skip
        self.streams_closed = Counter(
            "xdscp_streams_closed",
            "xDS streams closed, by reason: client_closed (requests ended), cancelled (by the"
            " client, or its connection closed), server_shutdown, slow_client, undecodable_request,"
            " invalid_request, error", ["client", "reason"], registry=metrics_registry,
        )  # fmt: skip
        self.pushes = Counter(
            "xdscp_pushes_total", "Discovery responses sent", ["type"], registry=metrics_registry
        )
        self.acks = Counter(
            "xdscp_acks_total", "Responses ACKed", ["type"], registry=metrics_registry
        )
        self.nacks = Counter(
            "xdscp_nacks_total", "Responses NACKed", ["type"], registry=metrics_registry
        )
        self.nacks_duplicate = Counter(
            "xdscp_nacks_duplicate_total", "NACKs repeating one already counted (not logged)",
            ["type"], registry=metrics_registry,
        )  # fmt: skip
        self.stale = Counter(
            "xdscp_stale_requests_total", "Requests with an old nonce, ignored", ["type"],
            registry=metrics_registry,
        )  # fmt: skip
        self.stream_errors = Counter(
            "xdscp_stream_errors_total",
            "Streams ended with an error status (slow_client: no read for the write timeout;"
            " undecodable_request; invalid_request: no type URL on ADS)", ["reason"],
            registry=metrics_registry,
        )  # fmt: skip
        self.push_to_ack = Histogram(
            "xdscp_push_ack_seconds", "From a response sent to its ACK", ["type"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=metrics_registry,
        )  # fmt: skip
        self.snapshot_build = Histogram(
            "xdscp_snapshot_build_seconds", "Translating services into snapshots",
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5), registry=metrics_registry,
        )  # fmt: skip
        self.translation_rejected = Counter(
            "xdscp_translation_rejected_total", "Services whose new input could not be translated",
            registry=metrics_registry,
        )  # fmt: skip


def short_type(type_url: str) -> str:
    """`Cluster`, `ClusterLoadAssignment`, ... for metric labels; `unknown` for a type xdscp
    does not serve (a label per type URL a client makes up would grow without bound)."""
    try:
        return RESOURCE_TYPES[TypeUrl(type_url)].short_name
    except ValueError:
        return "unknown"
