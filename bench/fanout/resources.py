"""The benchmark's resources: 50 EDS-over-ADS clusters and their ClusterLoadAssignments.

Built once by the orchestrator and written as serialized `DiscoveryResponse` files that the
baseline and the go-control-plane peer both load, so every server sends the same bytes:

- `cds.pb`: the 50 Clusters, version "c1";
- `eds-0.pb`: the 50 initial CLAs, version "e0";
- `eds-K.pb` (K >= 1): change K, where one endpoint of one cluster moves to `change_address(K)`.

The load generator recognises change K by `change_address(K)` inside a CLA (see `markers`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
CLUSTERS = 50
ENDPOINTS = 10
MAX_CHANGES = 250


def cluster_name(index: int) -> str:
    """The name of cluster `index`: svc-00 .. svc-49."""
    return f"svc-{index:02d}"


def endpoint_port(cluster: int, endpoint: int) -> int:
    """The port of one endpoint: unique per (cluster, endpoint), never contacted."""
    return 20000 + cluster * ENDPOINTS + endpoint


def change_address(change: int) -> str:
    """The address that change `change` (1-based) gives endpoint 0 of its cluster."""
    if not 1 <= change <= MAX_CHANGES:
        raise ValueError(f"change {change} outside 1..{MAX_CHANGES}")
    return f"127.0.200.{change}"


def changed_cluster(change: int) -> int:
    """The cluster that change `change` modifies: they rotate over the 50 clusters."""
    return change % CLUSTERS


def endpoints_of(cluster: int, change: int) -> list[tuple[str, int]]:
    """The (address, port) endpoints of `cluster` after `change` (0 = initial state)."""
    endpoints = [(f"127.0.0.{e + 1}", endpoint_port(cluster, e)) for e in range(ENDPOINTS)]
    for k in range(1, change + 1):
        if changed_cluster(k) == cluster:
            endpoints[0] = (change_address(k), endpoints[0][1])
    return endpoints


def build_cluster(index: int) -> Any:
    """One EDS cluster whose endpoints come over ADS."""
    cluster = cluster_pb2.Cluster(name=cluster_name(index))
    cluster.type = cluster_pb2.Cluster.EDS
    cluster.connect_timeout.FromMilliseconds(1000)
    cluster.lb_policy = cluster_pb2.Cluster.ROUND_ROBIN
    eds_config = cluster.eds_cluster_config.eds_config
    eds_config.ads.SetInParent()
    eds_config.resource_api_version = config_source_pb2.V3
    return cluster


def build_load_assignment(index: int, change: int) -> Any:
    """The CLA of cluster `index` after `change`: one locality, 10 endpoints, weight 1."""
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name(index))
    locality = cla.endpoints.add()
    locality.load_balancing_weight.value = 1
    for address, port in endpoints_of(index, change):
        lb_endpoint = locality.lb_endpoints.add()
        lb_endpoint.load_balancing_weight.value = 1
        socket = lb_endpoint.endpoint.address.socket_address
        socket.protocol = address_pb2.SocketAddress.TCP
        socket.address = address
        socket.port_value = port
    return cla


def response(type_url: str, version: str, nonce: str, messages: list[Any]) -> bytes:
    """A serialized DiscoveryResponse holding `messages` as Any."""
    out = discovery_pb2.DiscoveryResponse(version_info=version, type_url=type_url, nonce=nonce)
    for message in messages:
        out.resources.add().Pack(message)
    return bytes(out.SerializeToString(deterministic=True))


def cds_response() -> bytes:
    """The Cluster response every stream receives."""
    clusters = [build_cluster(i) for i in range(CLUSTERS)]
    return response(CLUSTER_TYPE, "c1", "c1", clusters)


def eds_response(change: int) -> bytes:
    """The CLA response after `change` (0 = initial): all 50 CLAs, version f"e{change}"."""
    clas = [build_load_assignment(i, change) for i in range(CLUSTERS)]
    return response(ENDPOINT_TYPE, f"e{change}", f"e{change}", clas)


def write_resources(directory: Path, changes: int) -> None:
    """Write cds.pb and eds-0.pb .. eds-{changes}.pb into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cds.pb").write_bytes(cds_response())
    for change in range(changes + 1):
        (directory / f"eds-{change}.pb").write_bytes(eds_response(change))
