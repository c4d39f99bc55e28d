"""From DNS records to the ClusterLoadAssignment a client receives, through xdscp.translate."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.dns import DnsTestServer
from tests.harness.dns import SRV_NAME, add_srv_targets, make_source
from xdscp.cache import Snapshot, TypeUrl
from xdscp.dns import DnsService, RecordType
from xdscp.model import ServiceSet
from xdscp.testing import Recorder, running, wait_for


def snapshot_of(services: ServiceSet) -> Snapshot:
    """The snapshot `xdscp.translate.translate` builds (skip while it is not available)."""
    translate = pytest.importorskip("xdscp.translate")
    result = translate.translate(services)
    assert result.rejected == ()
    return result.snapshot  # type: ignore[no-any-return]


def load_assignment(snapshot: Snapshot, name: str) -> Any:
    """The ClusterLoadAssignment a client receives for `name`, decoded from its Any."""
    from envoy.config.endpoint.v3 import endpoint_pb2
    from google.protobuf import any_pb2

    packed = any_pb2.Any.FromString(snapshot.resources[TypeUrl.ENDPOINT][name].any_bytes)
    cla = endpoint_pb2.ClusterLoadAssignment()
    assert packed.Unpack(cla)
    return cla


def lb_view(cla: Any) -> dict[int, list[tuple[str, int, int]]]:
    """priority -> [(address, port, weight)] from a ClusterLoadAssignment."""
    view: dict[int, list[tuple[str, int, int]]] = {}
    for group in cla.endpoints:
        for lb in group.lb_endpoints:
            socket = lb.endpoint.address.socket_address
            entry = (socket.address, socket.port_value, lb.load_balancing_weight.value)
            view.setdefault(group.priority, []).append(entry)
    return {p: sorted(v) for p, v in view.items()}


async def test_srv_records_reach_the_load_assignment(dns_server: DnsTestServer) -> None:
    """SRV weights and priorities reach the CLA; a weight change re-versions only the CLA."""
    name = SRV_NAME
    add_srv_targets(dns_server, (60, 20, 0))
    source = make_source(dns_server, DnsService("grpc", name, RecordType.SRV))
    recorder = Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready)
        first = snapshot_of(recorder.sets[-1])
        dns_server.remove(name, "SRV", "10 20 9002 b.test.")
        dns_server.add(name, "SRV", "10 40 9002 b.test.")
        await wait_for(lambda: len(recorder.sets) == 2)
        second = snapshot_of(recorder.sets[-1])
    cla = load_assignment(first, "grpc")
    assert cla.cluster_name == "grpc"
    assert lb_view(cla) == {
        0: [("10.0.0.1", 9001, 60), ("10.0.0.2", 9002, 20)],
        1: [("2001:db8::3", 9003, 1)],
    }
    assert lb_view(load_assignment(second, "grpc"))[0] == [
        ("10.0.0.1", 9001, 60),
        ("10.0.0.2", 9002, 40),
    ]
    assert first.versions[TypeUrl.ENDPOINT] != second.versions[TypeUrl.ENDPOINT]
    assert first.versions[TypeUrl.CLUSTER] == second.versions[TypeUrl.CLUSTER]
