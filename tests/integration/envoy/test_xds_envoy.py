"""A real Envoy configured only through xdscp's ADS: traffic, changes, warming, NACKs."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from google.protobuf import any_pb2

from tests.harness.plane import (
    XDS_APIS,
    EnvoyStarter,
    Plane,
    admin_json,
    aget,
    envoy_hosts,
    plane_admin,
    served_until,
    web,
)
from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.demo.backend import Backend
from xdscp.model import LbPolicy
from xdscp.testing import wait_for
from xdscp.translate import cluster_for

pytestmark = pytest.mark.envoy


@pytest.mark.parametrize("envoy", XDS_APIS, indirect=True)  # delta: test_delta_envoy.py
async def test_envoy_serves_weighted_traffic_from_xds_alone(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """Envoy's bootstrap names only xdscp: listener, routes, cluster and endpoints arrive
    over ADS, and weighted round robin 1:3 splits 40 sequential requests 10/30 (+-1)."""
    plane.source.set({"web": web(backends, (1, 3))})
    proxy = await envoy()
    counts = Counter([(await aget(plane.listener_port, "web"))[1] for _ in range(40)])
    assert abs(counts["b0"] - 10) <= 1
    assert abs(counts["b1"] - 30) <= 1
    assert set(counts) == {"b0", "b1"}
    (node,) = await plane_admin(plane, "/status/nodes")
    assert node["node"] == "envoy-0"
    assert node["client"] == "envoy"
    assert all(t["in_sync"] for t in node["types"].values()), node
    dump = await admin_json(proxy, "/config_dump?resource=dynamic_active_clusters")
    assert dump["configs"][0]["cluster"]["name"] == "web"


@pytest.mark.parametrize("envoy", XDS_APIS, indirect=True)  # delta: test_delta_envoy.py
async def test_endpoint_change_reaches_traffic_quickly(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """A new endpoint is served within a second of the change; a removed one gets nothing."""
    plane.source.set({"web": web(backends, (1, 1))})
    proxy = await envoy()
    await served_until(plane, "b0")
    plane.source.set({"web": web(backends, (1, 1, 1))})
    seconds = await served_until(plane, "b2", within=2.0)
    print(f"endpoint added -> first request served by it: {seconds * 1000:.1f} ms")
    plane.source.set({"web": web(backends[2:], (1,))})
    only_b2 = {f"127.0.0.1:{backends[2].http_port}"}
    await wait_for(lambda: envoy_hosts(proxy, "web") == only_b2, 30)  # the removal applied
    after = Counter([(await aget(plane.listener_port, "web"))[1] for _ in range(20)])
    assert after == {"b2": 20}


@pytest.mark.parametrize("envoy", XDS_APIS, indirect=True)  # delta: test_delta_envoy.py
async def test_cluster_change_does_not_wait_out_initial_fetch_timeout(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """A CDS-only change (the panic threshold) re-warms the cluster; xdscp sends its CLA at
    once and answers Envoy's re-sent EDS request, so it is active again in well under the
    5 s initial_fetch_timeout, and traffic never stops."""
    plane.source.set({"web": web(backends, (1, 1))})
    proxy = await envoy()
    await served_until(plane, "b0")
    plane.source.set({"web": web(backends, (1, 1), panic_threshold=10.0)})
    started = time.perf_counter()
    while True:
        warming = await admin_json(proxy, "/config_dump?resource=dynamic_warming_clusters")
        active = await admin_json(proxy, "/config_dump?resource=dynamic_active_clusters")
        threshold = active["configs"][0]["cluster"]["common_lb_config"]["healthy_panic_threshold"]
        if not warming.get("configs") and threshold["value"] == 10.0:
            break
        assert time.perf_counter() - started < 2.0, warming
        await asyncio.sleep(0.01)
    print(f"cluster change -> active: {(time.perf_counter() - started) * 1000:.1f} ms")
    status, _ = await aget(plane.listener_port, "web")
    assert status == 200


@pytest.mark.parametrize("envoy", XDS_APIS, indirect=True)  # delta: test_delta_envoy.py
async def test_nack_is_counted_shown_and_not_resent(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """A cluster Envoy rejects (Maglev table size not prime, forced past xdscp's checks) is
    NACKed once: counted, shown in /status/nodes, never re-sent; Envoy keeps serving the
    last good config; the next good change is accepted."""
    plane.source.set({"web": web(backends, (1, 1))})
    await envoy()
    await served_until(plane, "b0")
    good = plane.plane.cache.get("envoy")
    assert good is not None
    bad_cluster = cluster_for(web(backends, (1, 1), lb=LbPolicy.MAGLEV))
    bad_cluster.load_balancing_policy.policies[
        0
    ].typed_extension_config.typed_config.value = (
        b"\x0a\x04\x08\x80\x80\x04"  # Maglev.table_size = 65536
    )
    wrapped = any_pb2.Any()
    wrapped.Pack(bad_cluster)
    resources = [r for t in TypeUrl for r in good.resources[t].values() if t is not TypeUrl.CLUSTER]
    bad = Snapshot.of([*resources, Resource(TypeUrl.CLUSTER, "web", wrapped.SerializeToString())])
    plane.plane.cache.set("envoy", bad)
    nacks = plane.plane.metrics.nacks.labels("Cluster")
    for _ in range(200):
        if nacks._value.get() >= 1:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    assert nacks._value.get() == 1  # once: no loop
    (node,) = await plane_admin(plane, "/status/nodes")
    assert "prime" in node["last_nack"]["Cluster"]["error"]
    assert not node["types"]["Cluster"]["in_sync"]
    assert (await aget(plane.listener_port, "web"))[0] == 200  # last good config still live
    plane.source.set({"web": web(backends, (1, 1, 1))})
    await served_until(plane, "b2")
    (node,) = await plane_admin(plane, "/status/nodes")
    assert node["types"]["Cluster"]["in_sync"]
