"""CSDS with real clients: a real Envoy, a grpcio and a grpc-go client connected to xdscp,
read by a Python CSDS client (xds-protos stubs) and a Go one (go-control-plane's generated
`envoy/service/status/v3` stubs, tests/interop/go/csdsclient): every client's resources
ACKED, a name that does not exist DOES_NOT_EXIST, an Envoy NACK as NACKED with its error."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from google.protobuf import any_pb2, json_format

from tests.harness.grpc_clients import ClientStarter, grpc_service, in_sync
from tests.harness.paths import ROOT
from tests.harness.plane import EnvoyStarter, Plane, plane_admin
from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.clients import XdsServer, grpc_bootstrap
from xdscp.demo.backend import Backend
from xdscp.model import LbPolicy
from xdscp.testing import wait_for
from xdscp.translate import cluster_for

pytestmark = [pytest.mark.grpc, pytest.mark.envoy, pytest.mark.go, pytest.mark.slow]
CSDS_MODULE = ROOT / "tests" / "interop" / "go" / "csdsclient"
Statuses = dict[str, dict[tuple[str, str], dict[str, Any]]]  # node → (type, name) → config


@pytest.fixture(scope="session")
def csds_go_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Go CSDS client, built once against go-control-plane's stubs; skip without Go."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("no `go` on PATH: the Go CSDS client needs the Go toolchain")
    binary = tmp_path_factory.mktemp("go") / "csdsclient"
    subprocess.run(
        [go, "build", "-mod=readonly", "-buildvcs=false", "-o", str(binary), "."],
        cwd=CSDS_MODULE, check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    return str(binary)


def by_node(response: dict[str, Any]) -> Statuses:
    """A ClientStatusResponse as JSON (proto field names) → per node, per resource."""
    return {
        config["node"]["id"]: {
            (g["type_url"].rsplit(".", 1)[-1], g["name"]): g
            for g in config.get("generic_xds_configs", [])
        }
        for config in response.get("config", [])
    }


async def python_csds(plane: Plane, request: Any = None) -> Statuses:
    """Fetch with the Python stubs; the answer as JSON."""
    address = f"127.0.0.1:{plane.plane.xds_port}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
        response = await stub.FetchClientStatus(request or csds_pb2.ClientStatusRequest())
    return by_node(json_format.MessageToDict(response, preserving_proto_field_name=True))


async def go_csds(binary: str, plane: Plane, *matcher: str) -> tuple[Statuses, Statuses]:
    """The Go client's FetchClientStatus and StreamClientStatus answers; each resource it
    decoded with go-control-plane's types is checked to name itself as CSDS names it."""
    process = await asyncio.create_subprocess_exec(
        binary, f"127.0.0.1:{plane.plane.xds_port}", *matcher,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, (out, err)
    answers = [json.loads(line) for line in out.decode().splitlines()]
    for answer in answers:
        for key, name in answer["decoded"].items():
            assert key.endswith(f" {name}"), (key, name)
    assert all(answer["decoded"] for answer in answers)  # resources came and were decoded
    fetched, streamed = (by_node(answer["response"]) for answer in answers)
    return fetched, streamed


async def until(plane: Plane, test: Callable[[Statuses], bool], within: float = 20.0) -> Statuses:
    """Fetch over CSDS until `test` holds (the clients answer at their own pace)."""

    async def holds() -> Statuses | None:
        statuses = await python_csds(plane)
        return statuses if test(statuses) else None

    return await wait_for(holds, within, what="the CSDS statuses")


def all_acked(statuses: Statuses, node: str) -> bool:
    configs = statuses.get(node, {})
    return bool(configs) and all(c["client_status"] == "ACKED" for c in configs.values())


@pytest.fixture
async def missing_client(plane: Plane) -> AsyncIterator[Callable[[], Any]]:
    """A grpcio client for `xds:///missing` (no such service): it never gets ready."""
    started: list[asyncio.subprocess.Process] = []

    async def start() -> None:
        bootstrap = grpc_bootstrap(
            "python-missing", (XdsServer("127.0.0.1", plane.plane.xds_port),)
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.harness.grpc_client", "xds:///missing",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, cwd=ROOT,
            env={"GRPC_XDS_BOOTSTRAP_CONFIG": json.dumps(bootstrap), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        started.append(process)

    yield start
    for process in started:
        process.kill()
        await process.wait()


def bad_envoy_snapshot(plane: Plane, backends: list[Backend]) -> Snapshot:
    """Envoy's snapshot with cluster `web` replaced by one Envoy rejects (a Maglev table
    size that is not prime, forced past xdscp's checks)."""
    good = plane.plane.cache.get("envoy")
    assert good is not None
    bad = cluster_for(grpc_service(backends, (1, 1), lb=LbPolicy.MAGLEV))
    policy = bad.load_balancing_policy.policies[0].typed_extension_config.typed_config
    policy.value = b"\x0a\x04\x08\x80\x80\x04"  # Maglev.table_size = 65536
    wrapped = any_pb2.Any()
    wrapped.Pack(bad)
    kept = [r for t in TypeUrl for r in good.resources[t].values() if t is not TypeUrl.CLUSTER]
    return Snapshot.of([*kept, Resource(TypeUrl.CLUSTER, "web", wrapped.SerializeToString())])


async def test_csds_shows_acked_missing_and_nacked_resources_of_real_clients(  # noqa: PLR0917 - fixtures
    plane: Plane,
    grpc_backends: list[Backend],
    envoy: EnvoyStarter,
    grpc_client: ClientStarter,
    go_client_binary: str,
    csds_go_binary: str,
    missing_client: Callable[[], Any],
) -> None:
    """Envoy, grpcio and grpc-go in sync: both CSDS clients show every resource of each
    ACKED (with the resource); a grpcio client for a service with no entry shows its
    Listener DOES_NOT_EXIST; a cluster Envoy rejects shows NACKED with Envoy's error and
    the version it rejected, while Envoy's other resources stay ACKED; a node-id prefix
    matcher keeps only the gRPC nodes."""
    plane.source.set({"web": grpc_service(grpc_backends, (1, 1))})
    await envoy()
    py, go = await grpc_client("python"), await grpc_client("go")
    nodes = ("envoy-0", py.node_id, go.node_id)
    for node in nodes:
        await in_sync(plane, node)
    await missing_client()
    await until(plane, lambda s: ("Listener", "missing") in s.get("python-missing", {}))

    fetched, streamed = await go_csds(csds_go_binary, plane)
    by_python = await python_csds(plane)
    for statuses in (by_python, fetched, streamed):
        for node in nodes:
            assert all_acked(statuses, node), (node, statuses.get(node))
        assert ("Cluster", "web") in statuses["envoy-0"]
        cluster = statuses[py.node_id][("Cluster", "web")]
        assert cluster["config_status"] == "SYNCED"
        assert cluster["xds_config"]["@type"].endswith("envoy.config.cluster.v3.Cluster")  # type: ignore[index]
        assert cluster["version_info"]
        missing = statuses["python-missing"][("Listener", "missing")]
        assert missing["client_status"] == "DOES_NOT_EXIST"
    grpc_only, _ = await go_csds(csds_go_binary, plane, "prefix", "go-")
    assert set(grpc_only) == {go.node_id}

    plane.plane.cache.set("envoy", bad_envoy_snapshot(plane, grpc_backends))

    def nacked(statuses: Statuses) -> bool:
        cluster = statuses.get("envoy-0", {}).get(("Cluster", "web"), {})
        return bool(cluster.get("client_status") == "NACKED")

    await until(plane, nacked)
    fetched, _ = await go_csds(csds_go_binary, plane, "exact", "envoy-0")
    assert set(fetched) == {"envoy-0"}  # the exact matcher
    for statuses in (await python_csds(plane), fetched):
        cluster = statuses["envoy-0"][("Cluster", "web")]
        assert cluster["config_status"] == "ERROR"
        assert "prime" in cluster["error_state"]["details"], cluster["error_state"]
        assert cluster["error_state"]["version_info"]
        assert cluster["version_info"]  # the version Envoy still runs
        others = [c for key, c in statuses["envoy-0"].items() if key != ("Cluster", "web")]
        assert others
        assert all(c["client_status"] == "ACKED" for c in others)
    (nack,) = await plane_admin(plane, "/debug/nacks?node=envoy-0")
    assert nack["type"] == "Cluster"
    assert "prime" in nack["error"]
    dump = await plane_admin(plane, "/debug/config_dump?node=envoy-0&type=Cluster")
    (entry,) = dump["resources"]
    assert entry["client_status"] == "NACKED"
    assert "prime" in entry["error"]["error"]
    assert entry["config"] is None  # the snapshot no longer holds the version Envoy runs
    dump = await plane_admin(plane, "/debug/config_dump?node=envoy-0&type=Listener")
    (listener,) = dump["resources"]
    assert listener["client_status"] == "ACKED"
    assert listener["config"]["name"] == listener["name"]  # decoded
