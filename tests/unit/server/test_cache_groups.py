"""Node groups: chosen per node, each inheriting its client kind's snapshot unless given one."""

from __future__ import annotations

import pytest

from xdscp.cache import Resource, Snapshot, SnapshotCache, TypeUrl
from xdscp.errors import ConfigError
from xdscp.server.nodes import NodeInfo, grouper


def _snap(tag: bytes) -> Snapshot:
    return Snapshot.of([Resource(TypeUrl.CLUSTER, "c", tag)])


@pytest.mark.parametrize(
    ("spec", "node", "group"),
    [
        ("kind", NodeInfo("n1", "edge", "envoy"), "envoy"),
        ("cluster", NodeInfo("n1", "edge", "envoy"), "envoy/edge"),
        ("id", NodeInfo("app-7", "", "gRPC Python"), "grpc/app-7"),
        ("metadata:team", NodeInfo("n1", "", "envoy", metadata={"team": "pay"}), "envoy/pay"),
        ("metadata:team", NodeInfo("n1", "", "envoy"), "envoy"),
    ],
)
def test_grouping(spec: str, node: NodeInfo, group: str) -> None:
    """Groups stay within a client kind; a node without the key joins its kind's group."""
    assert grouper(spec)(node) == group


def test_bad_grouping_is_refused() -> None:
    """Unknown grouping names say what is allowed."""
    with pytest.raises(ConfigError, match="kind, cluster, id or metadata:KEY"):
        grouper("zone")


def test_groups_inherit_their_kind_until_given_their_own() -> None:
    """`envoy/edge` is served (and told about) the envoy snapshot; once it has its own, the
    kind's changes no longer reach it; watchers can stop."""
    cache = SnapshotCache()
    seen: list[bytes] = []
    stop = cache.watch(
        "envoy/edge", lambda s: seen.append(s.resources[TypeUrl.CLUSTER]["c"].any_bytes)
    )
    cache.set("envoy", _snap(b"1"))
    assert cache.get("envoy/edge") is cache.get("envoy")
    cache.set("envoy/edge", _snap(b"edge"))
    cache.set("envoy", _snap(b"2"))
    assert seen == [b"1", b"edge"]
    stop()
    cache.set("envoy/edge", _snap(b"edge-2"))
    assert seen == [b"1", b"edge"]
    assert cache.get("grpc/x") is None
