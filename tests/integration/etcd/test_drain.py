"""Graceful drain through a real etcd: DRAINING first (lease kept), then gone."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from tests.fixtures.etcd import EtcdServer
from tests.harness.cli import cli
from xdscp.errors import ValidationError
from xdscp.etcd import EtcdClient
from xdscp.model import Health
from xdscp.registry.registration import (
    Format,
    Placement,
    build_registration,
    deregister,
    register,
)
from xdscp.sources.etcd import EtcdRegistrySource
from xdscp.testing import Recorder, running, wait_for

pytestmark = pytest.mark.etcd


def _health(recorder: Recorder) -> list[Health]:
    services = recorder.sets[-1] if recorder.sets else {}
    return [e.health for s in services.values() for e in s.endpoints]


async def test_register_exit_drains_then_revokes(etcd_server: EtcdServer) -> None:
    """Leaving the block publishes the endpoint DRAINING, still on its lease, and only then
    removes it; the registry source sees both steps, in order."""
    registration = build_registration("api", "10.0.0.5", 8080)
    async with EtcdClient(etcd_server.config()) as client:
        source, recorder = EtcdRegistrySource(client, min_interval=0.0), Recorder()
        async with running(source, recorder):
            block = register(client, registration, ttl=2, drain=1.5)
            done = await block.__aenter__()
            await wait_for(lambda: _health(recorder) == [Health.HEALTHY])
            leaving = asyncio.create_task(block.__aexit__(None, None, None))
            await wait_for(lambda: _health(recorder) == [Health.DRAINING])
            kv = await client.get(done.key.encode())
            assert kv is not None
            assert kv.lease == done.lease_id
            assert not leaving.done()
            await leaving
            await wait_for(lambda: recorder.last == {})
        assert done.revoked


async def test_deregister_drain_marks_then_deletes(etcd_server: EtcdServer) -> None:
    registration = build_registration("api", "10.0.0.6", 8080)
    async with EtcdClient(etcd_server.config()) as client:
        source, recorder = EtcdRegistrySource(client, min_interval=0.0), Recorder()
        async with running(source, recorder), register(client, registration, ttl=5) as done:
            await wait_for(lambda: _health(recorder) == [Health.HEALTHY])
            task = asyncio.create_task(
                deregister(client, "api", "10.0.0.6:8080", Placement(), drain=1.0)
            )
            await wait_for(lambda: _health(recorder) == [Health.DRAINING])
            kv = await client.get(done.key.encode())
            assert kv is not None
            assert kv.lease == done.lease_id  # the lease is kept while draining
            assert await task is True
            await wait_for(lambda: recorder.last == {})


async def test_a_registrar_never_writes_back_a_key_deregistered_under_it(
    etcd_server: EtcdServer,
) -> None:
    """`xdscp deregister` removes a key whose registrar still runs (drain 1.5 s): when that
    registrar leaves, it does not write the endpoint back as DRAINING (it would reappear
    for the whole drain); the source never sees the endpoint again and the key stays gone.
    A deregister --drain of a key deleted meanwhile reports it as not registered."""
    registration = build_registration("api", "10.0.0.8", 8080)
    async with EtcdClient(etcd_server.config()) as client:
        source, recorder = EtcdRegistrySource(client, min_interval=0.0), Recorder()
        async with running(source, recorder):
            async with register(client, registration, ttl=5, drain=1.5) as done:
                await wait_for(lambda: _health(recorder) == [Health.HEALTHY])
                assert await deregister(client, "api", "10.0.0.8:8080", Placement())
                await wait_for(lambda: recorder.last == {})
                seen = len(recorder.sets)
            assert done.revoked
            marker = build_registration("api", "10.0.0.99", 1)  # a later write, to sync on
            async with register(client, marker, ttl=5):
                await wait_for(lambda: _health(recorder) == [Health.HEALTHY])
            hosts = [{e.key for s in set_.values() for e in s.endpoints} for set_ in recorder.sets]
            assert not [h for h in hosts[seen:] if "10.0.0.8:8080" in h], hosts[seen:]
            assert await client.get(done.key.encode()) is None
            gone = await deregister(client, "api", "10.0.0.8:8080", Placement(), drain=1.0)
            assert gone is False


async def test_drain_needs_the_native_format(etcd_server: EtcdServer) -> None:
    registration = build_registration("api", "10.0.0.7", 8080)
    async with EtcdClient(etcd_server.config()) as client:
        with pytest.raises(ValidationError, match="native"):
            async with register(client, registration, Placement(Format.GRPC_GO), ttl=2, drain=1.0):
                pass


def test_cli_deregister_drain_unknown_key(etcd_server: EtcdServer) -> None:
    url = etcd_server.config().endpoints[0]
    result = CliRunner().invoke(
        cli(), ["deregister", "api", "10.9.9.9:1", "--drain", "1", "--etcd", url]
    )
    assert result.exit_code == 1
    assert "is not registered" in result.output
