"""A real Envoy whose only dynamic resource is a static cluster's endpoints over ADS.

The bootstrap has no `cds_config` or `lds_config`: a static listener routes to a static
cluster `web` of type EDS with `eds_config: {ads: {}}` — the standard static-EDS setup. Its
ADS stream asks for the ClusterLoadAssignment `web` without ever subscribing to CDS; xdscp
must answer it (over state of the world and over delta), or Envoy waits out
`initial_fetch_timeout` and answers 503.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.plane import Plane, aget, web
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.demo.backend import Backend
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port

pytestmark = pytest.mark.envoy

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
# Far longer than the test waits: a CLA xdscp does not send is never stood in for.
INITIAL_FETCH_TIMEOUT = "120s"


def static_eds_bootstrap(plane: Plane, *, port: int, delta: bool) -> dict[str, Any]:
    """ADS to xdscp, no CDS/LDS; a static listener on `port` → static EDS cluster `web`."""
    options = EnvoyBootstrapOptions(
        node_id="static-eds",
        servers=(XdsServer("127.0.0.1", plane.plane.xds_port),),
        admin_port=0,
        delta=delta,
    )
    bootstrap = envoy_bootstrap(options)
    dynamic = bootstrap["dynamic_resources"]
    del dynamic["cds_config"], dynamic["lds_config"]
    eds_config = {
        "ads": {},
        "resource_api_version": "V3",
        "initial_fetch_timeout": INITIAL_FETCH_TIMEOUT,
    }
    bootstrap["static_resources"]["clusters"].append(
        {
            "name": "web",
            "type": "EDS",
            "connect_timeout": "1s",
            "eds_cluster_config": {"eds_config": eds_config},
        }
    )
    route = {"match": {"prefix": "/"}, "route": {"cluster": "web"}}
    manager = {
        "@type": _HCM + "HttpConnectionManager",
        "stat_prefix": "static",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    bootstrap["static_resources"]["listeners"] = [
        {
            "name": "static",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [
                {
                    "filters": [
                        {"name": "envoy.filters.network.http_connection_manager",
                         "typed_config": manager}
                    ]
                }
            ],
        }
    ]  # fmt: skip
    return bootstrap


async def served_by(port: int, wanted: str, within: float = 10.0) -> float:
    """Send requests through the static listener until `wanted` answers; seconds it took."""
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        status, who = await aget(port, "web")
        if status == 200 and who == wanted:
            return time.perf_counter() - started
    raise AssertionError(f"{wanted} never answered through the static cluster within {within} s")


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_static_eds_cluster_gets_its_endpoints_over_ads(
    plane: Plane, backends: list[Backend], tmp_path: Path, delta: bool
) -> None:
    """Envoy becomes LIVE at once (its static cluster's CLA arrives over ADS without any
    CDS subscription), a request through it reaches the backend, an endpoint change reaches
    traffic, and xdscp shows the node subscribed to `web` endpoints only."""
    plane.source.set({"web": web(backends[:1], (1,))})
    port = free_port()
    proxy = EnvoyProcess(static_eds_bootstrap(plane, port=port, delta=delta), tmp_path / "envoy")
    started = time.perf_counter()
    await asyncio.to_thread(proxy.start, 20.0)  # LIVE needs the CLA: 120 s fetch timeout
    try:
        live_after = time.perf_counter() - started
        assert await served_by(port, "b0") < 10
        plane.source.set({"web": web(backends[1:2], (1,))})
        assert await served_by(port, "b1") < 5
        (node,) = plane.plane.status.as_json()
        assert node["types"]["ClusterLoadAssignment"]["subscribed"] == ["web"]
        assert "Cluster" not in node["types"]
        assert live_after < 15
    finally:
        proxy.stop()
