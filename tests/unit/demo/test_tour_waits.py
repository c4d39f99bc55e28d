"""The demo tour's waits: it never tours without a running backend, and calls a policy
applied only when Envoy balances over every registered endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from xdscp.demo.admin import AdminClient
from xdscp.demo.tour import TourSetup, wait_accepted, wait_registered
from xdscp.errors import ProcessError
from xdscp.etcd import EtcdClient, KeyValue
from xdscp.model import BalancingPolicy, Endpoint, Service
from xdscp.registry import RegistryLayout
from xdscp.registry.registration import Placement, build_registration, encode
from xdscp.translate import TranslateOptions

NAMES = {"127.0.0.1:9001": "b1", "127.0.0.1:9002": "b2", "127.0.0.1:9003": "b3"}


def _kvs(ports: Sequence[int]) -> list[KeyValue]:
    out = []
    for revision, port in enumerate(ports, 1):
        key, value = encode(build_registration("web", "127.0.0.1", port), Placement())
        out.append(KeyValue(key.encode(), value, revision))
    return out


class FakeEtcd:
    """`get_prefix` answers the registrations of each listed round in turn (the last one
    for ever after); policies: none."""

    def __init__(self, rounds: list[list[int]]) -> None:
        self.rounds, self.reads = rounds, 0

    async def get_prefix(self, prefix: bytes) -> tuple[list[KeyValue], int]:
        if b"policies" in prefix:
            return [], 1
        ports = self.rounds[min(self.reads, len(self.rounds) - 1)]
        self.reads += 1
        return _kvs(ports), 1


def _setup(etcd: FakeEtcd) -> TourSetup:
    return TourSetup(
        etcd=cast("EtcdClient", etcd), admin=cast("AdminClient", None), service="web",
        listener_port=1, translate=TranslateOptions(), layout=RegistryLayout(),
        names=NAMES, requests=10,
    )  # fmt: skip


async def test_a_lapsed_registration_is_waited_for() -> None:
    """b2's key missing (its lease lost, the registrar writing it again), then back: the
    service is returned only once it holds all three running backends."""
    etcd = FakeEtcd([[9001, 9003], [9001, 9003], [], [9001, 9002, 9003]])
    service = await wait_registered(_setup(etcd), timeout_s=10)
    assert {e.key for e in service.endpoints} == set(NAMES)
    assert etcd.reads >= 4


async def test_a_backend_missing_for_good_is_named() -> None:
    """A running backend that never comes back: the tour stops, naming it, instead of
    touring the other two as if they were all."""
    with pytest.raises(ProcessError, match="backends b2 are running but not registered"):
        await wait_registered(_setup(FakeEtcd([[9001, 9003]])), timeout_s=0.2)


class FakeAdmin:
    """xdscp in sync with Envoy on versions "v"; Envoy's /clusters lists `hosts` in turn."""

    xdscp_port = 1

    def __init__(self, hosts: list[set[str]]) -> None:
        self.hosts, self.reads = hosts, 0

    async def state(self) -> tuple[Any, Any, Any]:
        served = {"grpc": {}, "envoy": {"Cluster": {"web": "v"}}}
        snapshots = {"envoy": {"Cluster": "v"}}
        node = {"client": "envoy", "group": "envoy", "types": {"Cluster": {"acked_version": "v"}}}
        return served, snapshots, [node]

    async def envoy_cluster_active(self, name: str, version: str) -> bool:
        return (name, version) == ("web", "v")

    async def envoy_hosts(self, name: str) -> set[str]:
        assert name == "web"
        held = self.hosts[min(self.reads, len(self.hosts) - 1)]
        self.reads += 1
        return held


SERVICE = Service(
    "web", tuple(Endpoint("127.0.0.1", p) for p in (9001, 9002, 9003)), BalancingPolicy()
)


async def test_accepted_only_once_envoy_holds_every_endpoint() -> None:
    """The versions are ACKed from the start, but Envoy lists two hosts, then all three:
    the policy counts as applied only then."""
    admin = FakeAdmin([set(NAMES) - {"127.0.0.1:9002"}] * 3 + [set(NAMES)])
    await wait_accepted(cast("AdminClient", admin), SERVICE, {"Cluster": "v"}, timeout_s=10)
    assert admin.reads == 4


async def test_an_endpoint_envoy_never_gets_fails_the_wait() -> None:
    """Envoy ACKs but never holds b2: the wait fails, saying what Envoy holds and what was
    expected."""
    admin = FakeAdmin([{"127.0.0.1:9001", "127.0.0.1:9003"}])
    with pytest.raises(ProcessError, match=r"it holds \['127.0.0.1:9001', '127.0.0.1:9003'\]"):
        await wait_accepted(cast("AdminClient", admin), SERVICE, {"Cluster": "v"}, timeout_s=0.2)
