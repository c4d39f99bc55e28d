"""Proxyless gRPC clients honour the weights xdscp computes from load.

Three gRPC backends registered with EQUAL weights, `weighted_round_robin` with
`adaptive_weights`, each endpoint carrying its own load (100 rps at utilization 1, 0.5 and
0.25: capacities 100, 200, 400). The plane computes 250 : 500 : 1000 and pushes it; gRPC
weighs localities, not endpoints, under round robin, and xdscp gives it one locality per
endpoint carrying the endpoint's weight: 1000 RPCs then split 1/7, 2/7, 4/7 (each count
within 5 sigma, tests/harness/stats.py), where the registered weights would split 1/3 each
(the alternative the bands must exclude).
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from tests.harness.grpc_clients import ClientStarter, grpc_service, in_sync
from tests.harness.plane import Plane
from tests.harness.stats import assert_shares
from xdscp.demo.backend import Backend
from xdscp.model import AdaptiveSettings, LbPolicy, ReportedLoad, Service

pytestmark = pytest.mark.grpc
N = 1000
ADAPTIVE = AdaptiveSettings(min_push_interval=0.0, max_step=100.0)


def _loaded(service: Service, backends: list[Backend]) -> Service:
    """Each endpoint's own load: 100 rps at utilization 1, 1/2, 1/4 for b0, b1, b2
    (capacities 1 : 2 : 4)."""
    now = time.time()
    utilization = {b.grpc_port: u for b, u in zip(backends, (1.0, 0.5, 0.25), strict=False)}
    endpoints = tuple(
        dataclasses.replace(e, load=ReportedLoad(utilization[e.port], 100.0, now))
        for e in service.endpoints
    )
    return dataclasses.replace(service, endpoints=endpoints)


async def test_grpcio_splits_by_the_computed_weights(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpcio 1.85."""
    await _splits_by_the_computed_weights(plane, grpc_backends, grpc_client, "python")


@pytest.mark.go
@pytest.mark.usefixtures("go_client_binary")
async def test_grpc_go_splits_by_the_computed_weights(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter
) -> None:
    """grpc-go."""
    await _splits_by_the_computed_weights(plane, grpc_backends, grpc_client, "go")


async def _splits_by_the_computed_weights(
    plane: Plane, grpc_backends: list[Backend], grpc_client: ClientStarter, kind: str
) -> None:
    """The loads arrive once the client is in sync on the registered weights; the plane's own
    tick (every second) computes and pushes; the client ACKs the new assignment."""
    service = grpc_service(
        grpc_backends, (1, 1, 1), lb=LbPolicy.WEIGHTED_ROUND_ROBIN, adaptive_weights=ADAPTIVE
    )
    plane.source.set({"web": service})
    client = await grpc_client(kind)
    before = await in_sync(plane, client.node_id)
    plane.source.set({"web": _loaded(service, grpc_backends)})  # what the registrations now carry
    await in_sync(plane, client.node_id, since=before, changed="ClusterLoadAssignment")
    assert plane.plane.pipeline.weights.weights("web") == {
        f"127.0.0.1:{b.grpc_port}": w for b, w in zip(grpc_backends, (250, 500, 1000), strict=False)
    }
    observed = await client.counts(N)
    names = [b.config.name for b in grpc_backends[:3]]
    predicted = dict(zip(names, (1 / 7, 2 / 7, 4 / 7), strict=True))
    assert_shares(observed, predicted, N, alternative=dict.fromkeys(names, 1 / 3))
