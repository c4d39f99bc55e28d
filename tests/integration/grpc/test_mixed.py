"""One service served at the same time to a real Envoy and a grpcio client, each from its own
translation (nodes are told apart by the user agent in their node)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from tests.harness.grpc_clients import (
    ClientStarter,
    grpc_service,
    in_sync,
    who_through_envoy,
)
from tests.harness.plane import EnvoyStarter, Plane, admin_json, plane_admin
from tests.harness.stats import assert_shares
from tests.integration.grpc.expect import REFERENCE_PICKS, predicted_shares
from xdscp.demo.backend import Backend
from xdscp.model import LbPolicy, UpstreamProtocol

pytestmark = [pytest.mark.grpc, pytest.mark.envoy]
HTTP2 = UpstreamProtocol.HTTP2
WRR_LOCALITY = "type.googleapis.com/envoy.extensions.load_balancing_policies.wrr_locality.v3"


def _policy_types(cluster: dict[str, object]) -> list[str]:
    policies = cluster["load_balancing_policy"]["policies"]  # type: ignore[index]
    return [p["typed_extension_config"]["typed_config"]["@type"] for p in policies]


async def test_envoy_and_grpcio_get_their_own_translation_of_one_service(
    plane: Plane, grpc_backends: list[Backend], envoy: EnvoyStarter, grpc_client: ClientStarter
) -> None:
    """A least-request service, an Envoy and a grpcio client connected at once, both in sync
    with no NACK. Envoy subscribed by wildcard and holds the HTTP listener on xdscp's listener
    port, routes by virtual host, and a cluster with the least_request policy; the gRPC client
    subscribed by name to a Listener named as its target (an api_listener), and its cluster
    (xdscp's gRPC group) carries wrr_locality. The gRPC client's 600 RPCs split as the
    reference's gRPC mode predicts (grpcio falls back to round robin); the same backends
    reached through Envoy (HTTP/2 upstreams) split as Envoy's weighted least request does."""
    service = grpc_service(
        grpc_backends, (1, 2, 7), lb=LbPolicy.LEAST_REQUEST, upstream_protocol=HTTP2
    )
    plane.source.set({"web": service})
    proxy, client = await asyncio.gather(envoy(), grpc_client("python"))
    by_envoy, by_grpc = await in_sync(plane, "envoy-0"), await in_sync(plane, client.node_id)
    assert (by_envoy["client"], by_grpc["client"]) == ("envoy", "grpc")
    assert "least_request" in by_grpc["policy_notes"]["web"][0]  # the approximation, in status
    assert "policy_notes" not in by_envoy
    assert by_envoy["types"]["Listener"]["subscribed"] == "*"
    assert {t: v["subscribed"] for t, v in by_grpc["types"].items()} == {
        "Listener": ["web"], "RouteConfiguration": ["web"], "Cluster": ["web"],
        "ClusterLoadAssignment": ["web"],
    }  # fmt: skip
    groups = await plane_admin(plane, "/debug/resources")
    assert set(groups["grpc"]["Listener"]) == {"web"}
    assert "web" not in groups["envoy"]["Listener"]
    assert groups["envoy"]["Cluster"]["web"] != groups["grpc"]["Cluster"]["web"]

    listeners = await admin_json(proxy, "/config_dump?resource=dynamic_listeners")
    (listener,) = [c["active_state"]["listener"] for c in listeners["configs"]]
    assert listener["name"] == "xdscp_http"
    assert listener["address"]["socket_address"]["port_value"] == plane.listener_port
    clusters = await admin_json(proxy, "/config_dump?resource=dynamic_active_clusters")
    (cluster,) = [c["cluster"] for c in clusters["configs"]]
    types = _policy_types(cluster)
    assert types[0].endswith("least_request.v3.LeastRequest"), types
    assert not any(t.startswith(WRR_LOCALITY) for t in types), json.dumps(cluster)

    observed = await client.counts(600)
    assert_shares(
        observed, predicted_shares(service, grpc_backends), 600, reference_picks=REFERENCE_PICKS
    )
    # The same backends through Envoy (HTTP/2 upstreams): 300 sequential RPCs, so no request
    # is ever active and least request reduces to Envoy's weighted EDF: 30 / 60 / 210.
    async with who_through_envoy(plane) as who:
        through_envoy = Counter([await who() for _ in range(300)])
    assert set(through_envoy) == {"b0", "b1", "b2"}, through_envoy
    for name, want in (("b0", 30), ("b1", 60), ("b2", 210)):
        assert abs(through_envoy[name] - want) <= 2, through_envoy
