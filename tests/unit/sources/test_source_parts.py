"""The registry source's parts that need no etcd: metrics and the standard resolver."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from xdscp.errors import DnsError
from xdscp.sources.etcd import RegistryMetrics, StdlibResolver


def test_metrics_are_registered_in_the_given_metrics_registry_only() -> None:
    """Two sources with their own registries do not clash; names follow the docs."""
    first, second = CollectorRegistry(), CollectorRegistry()
    metrics = RegistryMetrics(first)
    RegistryMetrics(second)
    metrics.rejected.labels("invalid_port").inc()
    metrics.etcd_up.set(1)
    assert first.get_sample_value("xdscp_registry_rejected_total", {"reason": "invalid_port"}) == 1
    assert (
        second.get_sample_value("xdscp_registry_rejected_total", {"reason": "invalid_port"}) is None
    )
    assert first.get_sample_value("xdscp_registry_etcd_up") == 1


async def test_stdlib_resolver_resolves_localhost_and_maps_failures() -> None:
    """localhost resolves to a loopback address; a name under .invalid raises DnsError."""
    resolver = StdlibResolver()
    addresses = await resolver.resolve("localhost")
    assert set(addresses) & {"127.0.0.1", "::1"}
    with pytest.raises(DnsError):
        await resolver.resolve("no-such-host.invalid")
