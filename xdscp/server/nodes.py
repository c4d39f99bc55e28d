"""Who is on the other end of a stream: node identity and the kind of client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf import json_format

from xdscp.errors import ConfigError
from xdscp.model import ClientKind


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The node a client announced in its first request."""

    id: str
    cluster: str = ""
    user_agent: str = ""
    user_agent_version: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)  # JSON values (CSDS matches them)
    locality: Mapping[str, str] = field(default_factory=dict)  # region / zone / sub_zone set

    @property
    def kind(self) -> ClientKind:
        """gRPC libraries announce themselves as `gRPC <language>`; anything else is Envoy."""
        return ClientKind.GRPC if self.user_agent.lower().startswith("grpc") else ClientKind.ENVOY


def node_info(node: Any) -> NodeInfo:
    """NodeInfo from an `envoy.config.core.v3.Node`."""
    metadata = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
    version = node.user_agent_version or (
        f"{node.user_agent_build_version.version.major_number}."
        f"{node.user_agent_build_version.version.minor_number}"
        if node.HasField("user_agent_build_version")
        else ""
    )
    return NodeInfo(
        id=node.id,
        cluster=node.cluster,
        user_agent=node.user_agent_name,
        user_agent_version=version,
        metadata=metadata,
        locality=json_format.MessageToDict(node.locality, preserving_proto_field_name=True),
    )


class NodeGrouper(Protocol):
    """Maps a node to the snapshot group it is served from."""

    def __call__(self, node: NodeInfo) -> str:
        """The group name."""
        ...


def group_by_client_kind(node: NodeInfo) -> str:
    """The default grouping: Envoy proxies and gRPC clients get their own translations."""
    return str(node.kind)


def grouper(spec: str) -> NodeGrouper:
    """A grouper from its name: `kind`, `cluster`, `id` or `metadata:KEY`.

    Groups are always within a client kind (`envoy/edge`, `grpc/payments`), because each
    kind needs its own translation; a node without the key falls in its kind's group.
    """
    if spec == "kind":
        return group_by_client_kind
    field_name, _, key = spec.partition(":")
    if field_name not in {"cluster", "id", "metadata"} or (field_name == "metadata") != bool(key):
        raise ConfigError(f"node grouping must be kind, cluster, id or metadata:KEY, got {spec!r}")

    def by(node: NodeInfo) -> str:
        if field_name == "metadata":
            found = node.metadata.get(key)
            value = "" if found is None else str(found)
        else:
            value = node.cluster if field_name == "cluster" else node.id
        return f"{node.kind}/{value}" if value else str(node.kind)

    return by
