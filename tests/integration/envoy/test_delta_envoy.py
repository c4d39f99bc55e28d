"""The same real-Envoy conversations as `test_xds_envoy`, over incremental (delta) xDS.

Envoy's bootstrap says `api_type: DELTA_GRPC`. The state-of-the-world tests that run
unchanged against that Envoy are parametrized by the `envoy` fixture (their `[delta]` cases in
test_xds_envoy.py and test_policies_xds.py): weighted traffic from xDS alone, endpoint changes,
a cluster change that must not wait out `initial_fetch_timeout`, a NACK that is counted, shown
and never re-sent, and xdscp restarted under load (Envoy reconnects with
`initial_resource_versions`; nothing it holds is sent again, so `last_updated` stays).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections import Counter

import pytest

from tests.harness.plane import EnvoyStarter, Plane, aget, plane_admin, served_until, web
from xdscp.demo.backend import Backend

pytestmark = pytest.mark.envoy


@pytest.fixture
def envoy(envoy: EnvoyStarter) -> EnvoyStarter:
    """The package's Envoy starter, with a delta xDS bootstrap."""
    return functools.partial(envoy, delta=True)


async def test_delta_stream_is_shown_and_a_removed_service_leaves_envoy(
    plane: Plane, backends: list[Backend], envoy: EnvoyStarter
) -> None:
    """The node's status names the delta service; removing a service removes its cluster
    from Envoy (`removed_resources`), while the other keeps serving."""
    api = dataclasses.replace(web(backends[1:], (1,)), name="api")
    plane.source.set({"web": web(backends, (1,)), "api": api})
    await envoy()
    await served_until(plane, "b0")
    for _ in range(200):  # Envoy subscribes each cluster's endpoints as the cluster warms
        (node,) = await plane_admin(plane, "/debug/nodes")
        if node["types"]["ClusterLoadAssignment"]["subscribed"] == ["api", "web"]:
            break
        await asyncio.sleep(0.01)
    assert node["service"] == "AggregatedDiscoveryService (delta)"
    assert node["types"]["ClusterLoadAssignment"]["subscribed"] == ["api", "web"]
    plane.source.set({"web": web(backends, (1,))})
    for _ in range(200):
        status, _ = await aget(plane.listener_port, "api")
        if status == 404:
            break
        await asyncio.sleep(0.01)
    assert status == 404  # no virtual host, no cluster
    counts = Counter([(await aget(plane.listener_port, "web"))[1] for _ in range(10)])
    assert counts == {"b0": 10}
    (node,) = await plane_admin(plane, "/debug/nodes")
    assert all(t["in_sync"] for t in node["types"].values()), node
