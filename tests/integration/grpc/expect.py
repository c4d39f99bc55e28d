"""What the reference balancer (client="grpc") predicts for a service's gRPC translation."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tests.harness.stats import SEED, shares
from xdscp.balancer import Balancer, build_balancer, sequential_picks
from xdscp.demo.backend import Backend
from xdscp.model import Service
from xdscp.translate.grpc import grpc_cluster, grpc_load_assignment, grpc_route_configuration

REFERENCE_PICKS = 20_000


def grpc_reference(service: Service) -> Balancer:
    """The reference balancer in proxyless-gRPC mode, for the resources gRPC clients get."""
    return build_balancer(
        grpc_cluster(service), grpc_load_assignment(service), client="grpc",
        rng=random.Random(SEED),
    )  # fmt: skip


def name_of(backends: list[Backend]) -> Callable[[object], str]:
    """Reference host (`127.0.0.1:PORT`) → backend name."""
    ports = {b.grpc_port: b.config.name for b in backends}
    return lambda host: ports[int(str(host).rpartition(":")[2])]


def predicted_shares(service: Service, backends: list[Backend]) -> dict[str, float]:
    """Each backend's share of requests without a hash, over REFERENCE_PICKS picks."""
    return shares(sequential_picks(grpc_reference(service), REFERENCE_PICKS, name_of(backends)))


def route_hash_policies(service: Service) -> Any:
    """The hash policies of the gRPC route (gRPC hashes per route, not per cluster)."""
    return grpc_route_configuration(service).virtual_hosts[0].routes[0].route.hash_policy


def predicted_backend(
    service: Service, backends: list[Backend], header: str
) -> Callable[[str], str]:
    """Header value → the backend the reference picks (hash policies from the gRPC route)."""
    balancer = grpc_reference(service)
    policies = route_hash_policies(service)
    names = name_of(backends)

    def pick(value: str) -> str:
        key = balancer.request_hash(headers={header: value}, route_policies=policies)
        assert key is not None, "the route hashes nothing for this header"
        return names(balancer.choose(key))

    return pick
