"""Snapshots: deterministic content-hash versions, reuse of unchanged services, last good kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import any_pb2, text_format

from tests.harness.model import policy_world
from tests.harness.paths import GOLDEN, ROOT
from xdscp.cache import TypeUrl
from xdscp.model import Endpoint, Service
from xdscp.translate import TranslateOptions, translate, translator_for

UPDATE = os.environ.get("XDSCP_UPDATE_GOLDEN") == "1"  # regenerate: XDSCP_UPDATE_GOLDEN=1 pytest


def _text(resource_bytes: bytes, message: object) -> str:
    wrapped = any_pb2.Any.FromString(resource_bytes)
    assert wrapped.Unpack(message)  # type: ignore[arg-type]
    return text_format.MessageToString(message)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(policy_world()))
def test_golden_resources(name: str) -> None:
    """Each policy's Cluster and CLA equal the reviewed golden text (XDSCP_UPDATE_GOLDEN=1
    rewrites them after an intended change)."""
    snapshot = translate(policy_world()).snapshot
    text = (
        _text(snapshot.resources[TypeUrl.CLUSTER][name].any_bytes, cluster_pb2.Cluster())
        + "---\n"
        + _text(
            snapshot.resources[TypeUrl.ENDPOINT][name].any_bytes,
            endpoint_pb2.ClusterLoadAssignment(),
        )
    )
    path = GOLDEN / f"{name}.txtpb"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()


def _versions_in_subprocess() -> dict[str, str]:
    code = (
        "import json, sys; sys.path.insert(0, '.');"
        "from tests.harness.model import policy_world;"
        "from xdscp.translate import translate;"
        "s = translate(policy_world()).snapshot;"
        "print(json.dumps({str(t): v for t, v in s.versions.items()}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def test_versions_are_identical_across_processes() -> None:
    """Another process (another hash seed: a restart or a replica) computes the same versions."""
    here = {str(t): v for t, v in translate(policy_world()).snapshot.versions.items()}
    assert _versions_in_subprocess() == here


def test_unchanged_services_reuse_their_resources() -> None:
    """Changing one service rebuilds only it; the others keep the very same Resource objects."""
    translator = translator_for()
    world = policy_world()
    first = translator.translate(world).snapshot
    changed = dict(world)
    changed["rr"] = Service("rr", world["rr"].endpoints[:2], world["rr"].policy)
    second = translator.translate(changed).snapshot
    for name in world:
        same = first.resources[TypeUrl.ENDPOINT][name] is second.resources[TypeUrl.ENDPOINT][name]
        assert same == (name != "rr"), name
        # rr's Cluster is rebuilt but byte-identical: the snapshot keeps the old object.
        assert first.resources[TypeUrl.CLUSTER][name] is second.resources[TypeUrl.CLUSTER][name]
    assert second.changes is not None
    assert second.changes[TypeUrl.ENDPOINT] == {"rr"}
    assert not second.changes[TypeUrl.CLUSTER]
    assert first.versions[TypeUrl.ENDPOINT] != second.versions[TypeUrl.ENDPOINT]
    assert first.versions[TypeUrl.CLUSTER] == second.versions[TypeUrl.CLUSTER]
    assert first.versions[TypeUrl.ROUTE] == second.versions[TypeUrl.ROUTE]


def test_rejected_service_keeps_its_last_good_resources() -> None:
    """A service that turns untranslatable keeps its last good version and is reported;
    the others move on; a service never translated is left out."""
    translator = translator_for()
    world = policy_world()
    good = translator.translate(world).snapshot
    heavy = tuple(Endpoint(f"10.9.0.{i}", 80, weight=2**31) for i in (1, 2))
    bad = dict(world)
    bad["wrr"] = Service("wrr", heavy, world["wrr"].policy)
    bad["newbad"] = Service("newbad", heavy, world["wrr"].policy)
    result = translator.translate(bad)
    assert [r.service for r in result.rejected] == ["newbad", "wrr"]
    assert "4294967295" in result.rejected[0].reason
    endpoints = result.snapshot.resources[TypeUrl.ENDPOINT]
    assert endpoints["wrr"] is good.resources[TypeUrl.ENDPOINT]["wrr"]
    assert "newbad" not in endpoints
    assert "newbad" not in result.snapshot.resources[TypeUrl.CLUSTER]


def test_routes_only_name_clusters_in_the_snapshot() -> None:
    """The route configuration names exactly the clusters of the same snapshot."""
    from envoy.config.route.v3 import route_pb2

    snapshot = translate(policy_world(), TranslateOptions()).snapshot
    routes = route_pb2.RouteConfiguration()
    any_pb2.Any.FromString(snapshot.resources[TypeUrl.ROUTE]["xdscp_routes"].any_bytes).Unpack(
        routes
    )
    named = {vh.routes[0].route.cluster for vh in routes.virtual_hosts}
    assert named == set(snapshot.resources[TypeUrl.CLUSTER])
