"""What the stack should be serving, read back from its etcd, and waits until it does.

`registry` rebuilds the services from etcd exactly as a replica does (RegistryState), so the
test can translate them itself: `applied` then waits until a replica holds those resources
(content-hash versions in /debug/resources), Envoy's stream is in sync on it (/debug/nodes),
and Envoy's own config dump holds the very same Cluster and ClusterLoadAssignment protos.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import json_format

from tests.harness.stack import ENVOY_NODE, HOST, Stack, get_json, xdscp
from xdscp.cache import TypeUrl
from xdscp.etcd import EtcdClient, WatchEvent, WatchEventType
from xdscp.model import Service
from xdscp.registry import RegistryState
from xdscp.registry.schema import Registration
from xdscp.translate import cluster_for, load_assignment_for, translate


@dataclass(frozen=True)
class Expected:
    """The web service as registered in etcd, and what translation makes of it."""

    service: Service
    registrations: tuple[Registration, ...]
    versions: Mapping[str, str]  # /debug/resources type name -> version of the web resource

    @property
    def cluster(self) -> Any:
        """The Cluster proto for web."""
        return cluster_for(self.service)

    @property
    def load_assignment(self) -> Any:
        """The ClusterLoadAssignment proto for web."""
        return load_assignment_for(self.service)

    def name_of(self, host: object) -> str:
        """The backend name (registration metadata `backend`) of a reference host `IP:PORT`."""
        address, _, port = str(host).rpartition(":")
        for reg in self.registrations:
            if (reg.host, reg.port) == (address.strip("[]"), int(port)):
                return reg.metadata.get("backend", f"{reg.host}:{reg.port}")
        raise KeyError(host)

    def registration(self, backend: str) -> Registration:
        """The registration whose metadata names `backend`."""
        (found,) = [r for r in self.registrations if r.metadata.get("backend") == backend]
        return found


async def registry(client: EtcdClient) -> Expected:
    """Services and policies read from etcd, built and translated like a replica does."""
    state = RegistryState()
    for prefix, apply in (
        (state.layout.services_prefix, state.apply_native),
        (state.layout.policies_prefix, state.apply_policies),
    ):
        kvs, _ = await client.get_prefix(prefix.encode())
        apply([WatchEvent(WatchEventType.PUT, kv.key, kv.value, kv.mod_revision) for kv in kvs])
    services, _ = state.build(lambda host: None)  # backends register IP literals
    snapshot = translate(services).snapshot
    versions = {
        str(t).rsplit(".", 1)[-1]: snapshot.resources[t][HOST].version
        for t in (TypeUrl.CLUSTER, TypeUrl.ENDPOINT)
    }
    regs = tuple(reg for _, reg in state.registrations() if reg.service == HOST)
    return Expected(services[HOST], regs, versions)


def envoy_node(stack: Stack, replica: str) -> dict[str, Any] | None:
    """Envoy's stream on `replica` as /debug/nodes shows it (None: not connected, or down)."""
    try:
        nodes = get_json(stack.replicas[replica], "/debug/nodes")
    except OSError:
        return None
    return next((n for n in nodes if n["node"] == ENVOY_NODE), None)


def connected_replica(stack: Stack) -> str | None:
    """The replica Envoy's ADS stream is on."""
    return next((r for r in stack.replicas if envoy_node(stack, r) is not None), None)


def _replica_serves(stack: Stack, replica: str, expected: Expected) -> bool:
    node = envoy_node(stack, replica)
    if node is None or not all(t["in_sync"] for t in node["types"].values()):
        return False
    held = get_json(stack.replicas[replica], "/debug/resources").get(node["group"], {})
    return all(held.get(t, {}).get(HOST) == v for t, v in expected.versions.items())


def _envoy_holds(stack: Stack, expected: Expected) -> bool:
    dump = get_json(stack.envoy_admin, "/config_dump?resource=dynamic_active_clusters")
    clusters = [c["cluster"] for c in dump.get("configs", []) if c["cluster"]["name"] == HOST]
    if not clusters or _parse(clusters[0], cluster_pb2.Cluster()) != expected.cluster:
        return False
    path = "/config_dump?resource=dynamic_endpoint_configs&include_eds"
    dump = get_json(stack.envoy_admin, path)
    held = [
        _parse(c["endpoint_config"], endpoint_pb2.ClusterLoadAssignment())
        for c in dump.get("configs", [])
        if c["endpoint_config"].get("cluster_name") == HOST
    ]
    return bool(held) and endpoint_view(held[0]) == endpoint_view(expected.load_assignment)


def endpoint_view(cla: Any) -> tuple[object, ...]:
    """What a ClusterLoadAssignment says about balancing, with Envoy's defaults applied (its
    config dump fills in weight 1 and empty health-check settings that xdscp leaves out)."""
    groups = []
    for group in cla.endpoints:
        hosts = sorted(
            (
                e.endpoint.address.socket_address.address,
                e.endpoint.address.socket_address.port_value,
                e.load_balancing_weight.value or 1,
                e.health_status,
                e.metadata.SerializeToString(deterministic=True),
            )
            for e in group.lb_endpoints
        )
        locality = group.locality.SerializeToString(deterministic=True)
        groups.append((locality, group.priority, group.load_balancing_weight.value, hosts))
    return (cla.cluster_name, sorted(groups), cla.policy.overprovisioning_factor.value)


def _parse(data: dict[str, Any], message: Any) -> Any:
    body = {k: v for k, v in data.items() if k != "@type"}
    return json_format.ParseDict(body, message, ignore_unknown_fields=True)


def is_applied(stack: Stack, expected: Expected) -> str | None:
    """The replica serving `expected` to an in-sync Envoy that holds it, else None (also
    while an admin endpoint does not answer: a replica may be stopping)."""
    try:
        replica = connected_replica(stack)
        if replica is None or not _replica_serves(stack, replica, expected):
            return None
        return replica if _envoy_holds(stack, expected) else None
    except OSError:
        return None


async def applied(stack: Stack, expected: Expected, within: float = 30.0) -> str:
    """Wait until Envoy runs exactly `expected` (see `is_applied`); the replica serving it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        replica = await asyncio.to_thread(is_applied, stack, expected)
        if replica is not None:
            return replica
        await asyncio.sleep(0.1)
    raise AssertionError(f"Envoy did not receive {dict(expected.versions)} within {within} s")


async def set_policy(stack: Stack, etcd: EtcdClient, *args: str) -> Expected:
    """`xdscp policy set web --replace ARGS` (exactly ARGS, nothing kept from the policy an
    earlier test stored) against the stack's etcd; what Envoy must then run."""
    await asyncio.to_thread(xdscp, stack, "policy", "set", HOST, "--replace", *args)
    return await registry(etcd)
