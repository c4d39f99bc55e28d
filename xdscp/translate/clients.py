"""The resources one kind of client receives for one service, for the reference balancer.

`xdscp simulate` and the admin dashboard's prediction both build the balancer from these, so
both predict from the very Cluster and ClusterLoadAssignment a client is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xdscp.model import ClientKind, Service
from xdscp.translate.envoy import cluster_for, load_assignment_for
from xdscp.translate.grpc import grpc_cluster, grpc_load_assignment, route_hash_policies_for

ClientResources = Callable[[Service], tuple[Any, Any]]
"""Builds the (Cluster, ClusterLoadAssignment) a client receives for a service."""


def client_resources(client: ClientKind = ClientKind.ENVOY) -> ClientResources:
    """The Cluster and ClusterLoadAssignment `client` receives."""

    def resources(service: Service) -> tuple[Any, Any]:
        if client is ClientKind.GRPC:
            return grpc_cluster(service), grpc_load_assignment(service)
        return cluster_for(service), load_assignment_for(service)

    return resources


def route_hash_policies(service: Service, client: ClientKind) -> Sequence[Any]:
    """The route's hash policies: gRPC clients read them there (Envoy's are in CDS)."""
    if client is not ClientKind.GRPC:
        return ()
    return route_hash_policies_for(service)
