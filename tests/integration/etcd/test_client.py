"""The etcd client against a real etcd: KV, paging, leases, watches, failover."""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.etcd import EtcdCluster, EtcdServer
from xdscp.errors import EtcdUnavailableError
from xdscp.etcd import EtcdClient, EtcdConfig, PrefixWatcher, WatchEventType, watch_prefix
from xdscp.testing import free_port

pytestmark = pytest.mark.etcd


async def test_range_is_paged_at_one_revision(etcd_server: EtcdServer) -> None:
    """A prefix larger than a page is read completely, at the revision of the first page."""
    async with EtcdClient(etcd_server.config(page_size=7)) as client:
        await client.put_many([(f"/p/{i:03}".encode(), b"v") for i in range(50)])
        await client.put(b"/q", b"outside")
        kvs, revision = await client.get_prefix(b"/p/")
        assert [kv.key for kv in kvs] == [f"/p/{i:03}".encode() for i in range(50)]
        assert revision == 3


async def test_put_get_delete_and_lease_lifecycle(etcd_server: EtcdServer) -> None:
    """Keys attached to a lease disappear when it is revoked."""
    async with EtcdClient(etcd_server.config()) as client:
        lease = await client.lease_grant(30)
        assert 0 < await client.lease_time_to_live(lease) <= 30
        await client.put(b"/l/a", b"1", lease=lease)
        got = await client.get(b"/l/a")
        assert got is not None
        assert got.lease == lease
        await client.lease_revoke(lease)
        assert await client.get(b"/l/a") is None
        assert await client.lease_time_to_live(lease) == -1
        await client.put(b"/d/1", b"x")
        assert await client.delete(b"/d/", prefix=True) == 1


async def test_failover_to_the_next_endpoint(etcd_server: EtcdServer) -> None:
    """A dead first endpoint is skipped for the live one."""
    dead = f"http://127.0.0.1:{free_port()}"
    config = etcd_server.config(endpoints=(dead, etcd_server.url), connect_timeout=0.3)
    async with EtcdClient(config) as client:
        await client.put(b"/f", b"1")
        assert client.endpoint.port == etcd_server.client_port


async def test_a_refusing_member_is_left_at_once_not_after_the_connect_timeout(
    etcd_server: EtcdServer,
) -> None:
    """A member that refuses connections is left at its first failed attempt: with a 60 s
    connect timeout the call still lands on the live member (a dead leader must not hold a
    registrar past its lease's TTL)."""
    dead = f"http://127.0.0.1:{free_port()}"
    config = etcd_server.config(endpoints=(dead, etcd_server.url), connect_timeout=60.0)
    async with EtcdClient(config) as client:
        async with asyncio.timeout(20):  # waiting out the connect timeout would take 60 s
            await client.put(b"/f", b"1")
        assert client.endpoint.port == etcd_server.client_port


async def test_unreachable_etcd_is_an_unavailable_error() -> None:
    """With no etcd listening, calls fail with EtcdUnavailableError within the timeout."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = EtcdConfig(endpoints=(endpoint,), request_timeout=0.5, connect_timeout=0.2)
    async with EtcdClient(config) as client:
        with pytest.raises(EtcdUnavailableError):
            await client.get(b"/x")


async def test_watch_resumes_after_kill_without_losing_events(etcd_server: EtcdServer) -> None:
    """Writes made while the watcher was disconnected arrive once, in order, after restart."""
    async with (
        EtcdClient(etcd_server.config()) as client,
        EtcdClient(etcd_server.config()) as writer,
    ):
        await client.put(b"/w/0", b"0")
        watcher = PrefixWatcher(client, b"/w/")
        changes = watcher.changes()
        initial = await anext(changes)
        assert [e.key for e in initial] == [b"/w/0"]
        etcd_server.kill()
        etcd_server.start()
        await writer.put(b"/w/1", b"1")
        await writer.delete(b"/w/0")
        seen = []
        while len(seen) < 2:
            seen += await asyncio.wait_for(anext(changes), 10)
        assert [(e.kind, e.key) for e in seen] == [
            (WatchEventType.PUT, b"/w/1"),
            (WatchEventType.DELETE, b"/w/0"),
        ]
        assert set(watcher.mirror.revisions) == {b"/w/1"}
        await changes.aclose()


async def test_watch_fails_over_to_another_cluster_member(etcd_cluster: EtcdCluster) -> None:
    """Killing the member a watcher uses moves it to another member; nothing is lost."""
    config = EtcdConfig(endpoints=etcd_cluster.urls, connect_timeout=0.5, request_timeout=10.0)
    async with EtcdClient(config) as client:
        watcher = PrefixWatcher(client, b"/m/")
        changes = watcher.changes()
        await anext(changes)
        used = next(m for m in etcd_cluster.members if m.client_port == client.endpoint.port)
        others = [m for m in etcd_cluster.members if m is not used]
        used.kill()
        writer_config = EtcdConfig(endpoints=tuple(m.url for m in others), request_timeout=15.0)
        async with EtcdClient(writer_config) as writer:
            await writer.put(b"/m/a", b"1")
            await writer.put(b"/m/b", b"2")
        seen: list[bytes] = []
        while len(seen) < 2:
            seen += [e.key for e in await asyncio.wait_for(anext(changes), 15)]
        assert seen == [b"/m/a", b"/m/b"]
        assert client.endpoint.port != used.client_port
        await changes.aclose()


_MIB = 1024 * 1024


async def _write_large(client: EtcdClient, count: int, size: int) -> int:
    revision = 0
    for i in range(count):
        revision = await client.put(f"/big/{i:02}".encode(), bytes([65 + i]) * size)
    return revision


async def test_a_listing_larger_than_the_receive_limit_is_read_in_smaller_pages(
    etcd_server: EtcdServer,
) -> None:
    """Values that together exceed the receive limit are listed completely: the page
    shrinks on RESOURCE_EXHAUSTED (down to one key) instead of failing forever."""
    async with EtcdClient(etcd_server.config(max_receive_bytes=4 * _MIB)) as client:
        await _write_large(client, 12, _MIB)  # 12 MiB under one prefix, each value 1 MiB
        kvs, _ = await client.get_prefix(b"/big/")
        assert [kv.key for kv in kvs] == [f"/big/{i:02}".encode() for i in range(12)]
        assert all(kv.value == bytes([65 + i]) * _MIB for i, kv in enumerate(kvs))


async def test_a_watch_catching_up_over_large_values_arrives_in_fragments(
    etcd_server: EtcdServer,
) -> None:
    """A watch started before 12 MiB of writes (one catch-up batch far above the 4 MiB receive
    limit) gets every event: the watch asks etcd to fragment its responses."""
    async with EtcdClient(etcd_server.config(max_receive_bytes=4 * _MIB)) as client:
        start = await client.put(b"/big/start", b"")
        last = await _write_large(client, 12, _MIB)
        seen: list[bytes] = []
        async with asyncio.timeout(30):
            async for batch in watch_prefix(client, b"/big/", start + 1):
                seen.extend(event.key for event in batch.events)
                if batch.events and batch.events[-1].mod_revision == last:
                    break
        assert seen == [f"/big/{i:02}".encode() for i in range(12)]
