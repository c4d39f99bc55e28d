"""The etcd registry source against a real etcd: discovery, bad input, outages, coalescing."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from structlog.testing import capture_logs

from tests.fixtures.etcd import EtcdServer
from tests.fixtures.etcd_backends import EtcdBackend
from tests.integration.etcd.helpers import ROOT, endpoint_json
from xdscp.etcd import EtcdClient
from xdscp.model import LbPolicy, ServiceSet
from xdscp.sources.etcd import EtcdRegistrySource
from xdscp.testing import Recorder, running, wait_for

pytestmark = pytest.mark.etcd


async def test_services_policies_and_malformed_entries(etcd_backend: EtcdBackend) -> None:
    """Good entries are published with their policy; bad ones are skipped, logged, counted."""
    async with EtcdClient(etcd_backend.config()) as client:
        await client.put(f"{ROOT}api/1".encode(), endpoint_json("10.0.0.1", 80, weight=3))
        await client.put(f"{ROOT}api/2".encode(), endpoint_json("10.0.0.2", 80))
        await client.put(f"{ROOT}api/bad".encode(), endpoint_json("10.0.0.3", 70000))
        await client.put(f"{ROOT}api/junk".encode(), b"{nope")
        await client.put(f"{ROOT}web/1".encode(), endpoint_json("localhost", 8080))
        await client.put(b"/xdscp/policies/api", json.dumps({"lb": "maglev"}).encode())
        source, recorder = EtcdRegistrySource(client), Recorder()
        with capture_logs() as logs:
            async with running(source, recorder):
                await wait_for(lambda: source.ready)
        assert recorder.last == {"api": ["10.0.0.1:80", "10.0.0.2:80"], "web": ["127.0.0.1:8080"]}
        assert recorder.sets[-1]["api"].policy.lb is LbPolicy.MAGLEV
        assert len(recorder.sets) == 1
        rejected = {
            (e["key"], e["reason"]) for e in logs if e["event"] == "registry_entry_rejected"
        }
        assert rejected == {(f"{ROOT}api/bad", "invalid_port"), (f"{ROOT}api/junk", "invalid_json")}
        counter = source.metrics.rejected
        assert counter.labels("invalid_port")._value.get() == 1
        assert counter.labels("invalid_json")._value.get() == 1


class TimedRecorder(Recorder):
    """A `Recorder` that also notes when (monotonic seconds) each set was published."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def __call__(self, services: ServiceSet) -> None:
        self.times.append(time.monotonic())
        super().__call__(services)


async def test_a_transaction_burst_is_one_publish(etcd_backend: EtcdBackend) -> None:
    """Fifty registrations written in one transaction produce exactly one publish: the first
    after it holds all fifty, and nothing else is published before a later write's set."""
    async with EtcdClient(etcd_backend.config()) as client:
        source, recorder = EtcdRegistrySource(client), Recorder()
        async with running(source, recorder):
            await wait_for(lambda: source.ready)
            before = len(recorder.sets)
            items = [(f"{ROOT}s/{i}".encode(), endpoint_json(f"10.1.0.{i}", 80)) for i in range(50)]
            await client.put_many(items)
            await wait_for(lambda: len(recorder.last.get("s", [])) == 50)
            await client.put(f"{ROOT}later/1".encode(), endpoint_json("10.2.0.1", 80))
            await wait_for(lambda: "later" in recorder.last)  # the watch is past the burst
        burst = [s for s in recorder.sets[before:] if "later" not in s]
        assert [len(s["s"].endpoints) for s in burst] == [50]


async def test_a_write_burst_is_gathered_by_the_throttle(etcd_backend: EtcdBackend) -> None:
    """Thirty separate writes: no two publishes closer than the throttle interval, so the
    writes are gathered (with a 2 s interval, into one or two sets on an idle machine)."""
    interval = 2.0
    async with EtcdClient(etcd_backend.config()) as client:
        source, recorder = EtcdRegistrySource(client, min_interval=interval), TimedRecorder()
        async with running(source, recorder):
            await wait_for(lambda: source.ready)
            before = len(recorder.sets)
            for i in range(30):
                await client.put(f"{ROOT}s/{i}".encode(), endpoint_json(f"10.1.0.{i}", 80))
            await wait_for(lambda: len(recorder.last.get("s", [])) == 30, limit=30)
        times = recorder.times[before:]
        assert all(b - a >= interval - 0.001 for a, b in itertools.pairwise(times)), times
        assert len(times) < 30  # gathered: fewer publishes than writes


async def test_outage_keeps_the_last_set_and_recovers(etcd_server: EtcdServer) -> None:
    """etcd down: nothing is published (no emptied service), etcd_up is 0; then it catches up."""
    async with EtcdClient(etcd_server.config()) as client:
        await client.put(f"{ROOT}api/1".encode(), endpoint_json("10.0.0.1", 80))
        source, recorder = EtcdRegistrySource(client), Recorder()
        with capture_logs() as logs:
            async with running(source, recorder):
                await wait_for(lambda: source.ready)
                published = len(recorder.sets)
                failures = source.metrics.etcd_failures._value.get()
                etcd_server.kill()
                # every prefix's watcher (services, policies) has seen the outage: one each
                await wait_for(lambda: source.metrics.etcd_failures._value.get() >= failures + 2)
                assert source.metrics.etcd_up._value.get() == 0
                assert len(recorder.sets) == published
                assert source.ready
                etcd_server.start()
                await client.put(f"{ROOT}api/2".encode(), endpoint_json("10.0.0.2", 80))
                await wait_for(lambda: recorder.last == {"api": ["10.0.0.1:80", "10.0.0.2:80"]})
        assert any(e["event"] == "registry_etcd_unavailable" for e in logs)
        assert all(s["api"].endpoints for s in recorder.sets)
        assert source.metrics.etcd_up._value.get() == 1


async def test_cold_start_without_etcd_is_not_ready(etcd_bin: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No etcd at start: not ready, the reason is logged; ready once etcd appears."""
    server = EtcdServer(etcd_bin, tmp_path / "data")
    async with EtcdClient(server.config(connect_timeout=0.2, request_timeout=0.5)) as client:
        source, recorder = EtcdRegistrySource(client), Recorder()
        with capture_logs() as logs:
            async with running(source, recorder):
                await wait_for(lambda: any(e["event"] == "registry_not_ready" for e in logs))
                assert not source.ready
                assert recorder.sets == []
                try:
                    server.start()
                    await wait_for(lambda: source.ready)
                finally:
                    server.stop()
        reasons = [e["reason"] for e in logs if e["event"] == "registry_not_ready"]
        assert reasons
        assert "no etcd endpoint reachable" in reasons[0]
        assert recorder.last == {}
