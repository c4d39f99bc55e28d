"""Replicas sharing their clients' load through etcd (the fake): each writes its load book's
adaptive services under a lease, only when it changed; each reads the others', refusing
hostile records without losing the last good one; a replica's record goes with its lease.
A replica with no client of a service decides its weights from another replica's clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from xdscp.etcd import EtcdClient, WatchEvent, WatchEventType
from xdscp.load import EndpointLoad, LoadBook, LoadReport
from xdscp.model import AdaptiveSettings, BalancingPolicy, ClientKind, Endpoint, LbPolicy, Service
from xdscp.plane.pipeline import Pipeline
from xdscp.plane.shared_load import FleetMetrics, LoadCoordination, SharedLoad, load_prefix
from xdscp.testing import FakeEtcd, ManualClock, wait_for
from xdscp.translate import translator_for

PREFIX = load_prefix("/xdscp/services/")
CAPACITY = {"10.0.0.1:80": 100.0, "10.0.0.2:80": 200.0, "10.0.0.3:80": 400.0}
TTL = 5


def _known(cluster: str, endpoint: str) -> bool:
    return cluster in {"web", "other"} and endpoint in CAPACITY


def _report(book: LoadBook, reporter: str, cluster: str = "web", rps: float = 50.0) -> None:
    """A client's 1 s report: each endpoint at `rps`, its utilization rps / capacity."""
    loads = tuple(
        EndpointLoad(cluster, key, int(rps), 0, rps / capacity * int(rps), int(rps))
        for key, capacity in CAPACITY.items()
    )
    book.record(
        reporter, LoadReport(reporter, 1.0, loads), asyncio.get_running_loop().time(), _known
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeEtcd]:
    """The in-process fake etcd on a manual clock (leases expire only on `advance`)."""
    async with FakeEtcd(clock=ManualClock()) as etcd:
        yield etcd


class _Replica:
    """One replica's load sharing: its book, its `SharedLoad`, its metrics."""

    def __init__(self, client: EtcdClient, identity: str) -> None:
        self.book = LoadBook(stale_after_s=30)
        self.registry = CollectorRegistry()
        coordination = LoadCoordination(client, PREFIX, identity, TTL, 0.02, 30.0)
        loop = asyncio.get_running_loop()
        self.shared = SharedLoad(
            coordination, self.book.summaries, lambda: frozenset({"web"}),
            FleetMetrics(self.registry), clock=loop.time,
        )  # fmt: skip

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def _running(client: EtcdClient, *identities: str) -> AsyncIterator[list[_Replica]]:
    replicas = [_Replica(client, identity) for identity in identities]
    tasks = []
    for replica in replicas:
        replica.shared.want()
        tasks.append(asyncio.create_task(replica.shared.run()))
    try:
        yield replicas
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _rps(replica: _Replica, endpoint: str = "10.0.0.1:80") -> float:
    now = asyncio.get_running_loop().time()
    found = [s for s in replica.shared.samples(now).get("web", []) if s.endpoint == endpoint]
    return found[0].rps if found else 0.0


async def test_each_replica_reads_the_others_clients_and_their_records_go_with_them(
    fake: FakeEtcd,
) -> None:
    """A's clients' load reaches B's samples added to B's own; A stopped (its lease revoked)
    or its lease expired, B no longer counts it; A's new lease is written anew."""
    async with EtcdClient(fake.config()) as client, _running(client, "b") as (b,):
        _report(b.book, "envoy-b#1")
        async with _running(client, "a") as (a,):
            _report(a.book, "envoy-a#1")
            _report(a.book, "envoy-a#2")
            await wait_for(lambda: _rps(b) == 150.0, what="a's load at b")
            assert b.shared.fleet.replicas == {"a"}
            assert a.shared.fleet.replicas == {"b"}
            assert _rps(a) == 150.0  # both see the fleet's load
            assert b.metric("xdscp_fleet_load_replicas") == 1
            fake.advance(TTL + 1)  # a's lease expires: its record goes, then comes back
            await wait_for(lambda: a.metric("xdscp_fleet_load_writes_total") >= 2)
            await wait_for(lambda: _rps(b) == 150.0, what="a's record written anew")
        await wait_for(lambda: not b.shared.fleet.replicas, what="a's record gone")
        assert _rps(b) == 50.0


async def test_a_replica_writes_only_its_adaptive_services_and_only_what_changed(
    fake: FakeEtcd,
) -> None:
    async with EtcdClient(fake.config()) as client:
        replica = _Replica(client, "a")
        now = asyncio.get_running_loop().time()
        first = replica.shared.pending(now, 1e9)
        assert first is not None
        assert json.loads(first[0]) == {"v": 1, "services": {}}
        replica.shared.written(first[1])
        assert replica.shared.pending(now + 1, 1e9) is None  # nothing new: nothing written
        _report(replica.book, "envoy#1", cluster="web")
        _report(replica.book, "envoy#1", cluster="other")
        found = replica.shared.pending(now + 1, 1e9)
        assert found is not None
        assert list(json.loads(found[0])["services"]) == ["web"]
        replica.shared.written(found[1])
        assert replica.shared.pending(now + 2, 1e9) is None
        replica.shared.written(None)  # a new lease holds nothing: written again
        assert replica.shared.pending(now + 2, 1e9) is not None


def _event(key: bytes, value: bytes) -> WatchEvent:
    return WatchEvent(WatchEventType.PUT, key, value, 1)


async def test_a_hostile_record_is_logged_counted_and_the_last_good_one_stays(
    fake: FakeEtcd,
) -> None:
    async with EtcdClient(fake.config()) as client:
        replica, other = _Replica(client, "b"), _Replica(client, "a")
        now = asyncio.get_running_loop().time()
        _report(other.book, "envoy#1")
        good = other.shared.pending(now, 1e9)
        assert good is not None
        key = f"{PREFIX}replicas/a".encode()
        replica.shared.take(_event(key, good[0]), now, 1e9)
        hostile = [
            (key, b"\xff\xfe"), (key, b"[" * 50_000), (key, b'{"v": 1, "services": {"web": 1}}'),
            (f"{PREFIX}replicas/".encode() + b"\xff", good[0]),
        ]  # fmt: skip
        with capture_logs() as logs:
            for bad_key, value in hostile:
                replica.shared.take(_event(bad_key, value), now, 1e9)
        assert [e["event"] for e in logs] == ["fleet_load_record_rejected"] * len(hostile)
        assert all(e["error"] for e in logs)
        assert replica.metric("xdscp_fleet_load_refused_total", reason="record") == len(hostile)
        assert _rps(replica) == 50.0  # a's last good record
        nan = json.loads(good[0])
        nan["services"]["web"]["10.0.0.1:80"][0] = float("nan")
        nan["services"]["unknown"] = nan["services"]["web"]
        with capture_logs() as logs:
            replica.shared.take(_event(key, json.dumps(nan).encode()), now, 1e9)
        assert logs[0]["event"] == "fleet_load_entries_refused"
        assert logs[0]["refused"] == {"implausible": 1, "unknown_service": 3}
        assert _rps(replica) == 0.0
        assert _rps(replica, "10.0.0.2:80") == 50.0
        own = f"{PREFIX}replicas/b".encode()
        replica.shared.take(_event(own, good[0]), now, 1e9)  # its own record: not counted twice
        assert replica.shared.fleet.replicas == {"a"}


def _pipeline() -> Pipeline:
    policy = BalancingPolicy(
        lb=LbPolicy.WEIGHTED_ROUND_ROBIN,
        adaptive_weights=AdaptiveSettings(min_push_interval=1.0, max_step=100.0, smoothing=1.0),
    )
    pipe = Pipeline(("static",), {kind: translator_for(kind) for kind in ClientKind})
    endpoints = tuple(Endpoint(f"10.0.0.{i}", 80) for i in (1, 2, 3))
    pipe.publish(0, {"web": Service("web", endpoints, policy)})
    pipe.merge()
    return pipe


@pytest.mark.parametrize("clients_at", ["publisher", "other"])
async def test_the_weights_follow_the_capacities_whichever_replica_the_clients_use(
    fake: FakeEtcd, clients_at: str
) -> None:
    """The publisher's loop reads the fleet's load: its weights reach 250 : 500 : 1000 from
    clients attached to it, or only to the other replica."""
    async with (
        EtcdClient(fake.config()) as client,
        _running(client, "pub", "other") as (
            publisher,
            other,
        ),
    ):
        reporting = publisher if clients_at == "publisher" else other
        _report(reporting.book, "envoy#1")
        await wait_for(lambda: _rps(publisher) == 50.0, what="the clients' load at the publisher")
        pipe = _pipeline()
        now = asyncio.get_running_loop().time()
        pipe.apply_loads(publisher.shared.samples(now), now, 0.0)
        assert pipe.weights.weights("web") == {
            "10.0.0.1:80": 250, "10.0.0.2:80": 500, "10.0.0.3:80": 1000,
        }  # fmt: skip
