"""Nothing lost, duplicated or stale: etcd killed mid-watch, compaction past the watch."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from structlog.testing import capture_logs

from tests.fixtures.etcd import EtcdServer
from tests.integration.etcd.helpers import (
    ROOT,
    endpoint_json,
    endpoint_order,
    etcd_content,
)
from xdscp.etcd import EtcdClient, PrefixWatcher
from xdscp.sources.etcd import EtcdRegistrySource
from xdscp.testing import Recorder, running, wait_for

pytestmark = pytest.mark.etcd


async def _write_round(client: EtcdClient, rng: random.Random, live: dict[str, bytes]) -> None:
    """Ten random writes: new registrations, changed ports, deletions."""
    for _ in range(10):
        choice = rng.random()
        if live and choice < 0.3:
            key = rng.choice(sorted(live))
            await client.delete(key.encode())
            del live[key]
            continue
        service = rng.choice(["a", "b", "c"])
        key = f"{ROOT}{service}/{rng.randrange(30)}"
        value = endpoint_json(
            f"10.{ord(service)}.0.{rng.randrange(1, 250)}", rng.randrange(1, 65536)
        )
        await client.put(key.encode(), value)
        live[key] = value


async def test_registry_matches_etcd_after_repeated_kill_9(etcd_server: EtcdServer) -> None:
    """Three SIGKILL/restart cycles with writes before, right after and later: same content."""
    rng = random.Random(7)
    live: dict[str, bytes] = {}
    config = etcd_server.config(request_timeout=10.0)
    async with EtcdClient(config) as client, EtcdClient(config) as writer:
        source, recorder = EtcdRegistrySource(client, min_interval=0.0), Recorder()
        async with running(source, recorder):
            await _write_round(writer, rng, live)
            await wait_for(lambda: source.ready)
            for _ in range(3):
                await _write_round(writer, rng, live)  # before the gap
                etcd_server.kill()
                await asyncio.sleep(0.2)
                etcd_server.start()
                await _write_round(writer, rng, live)  # while the watcher reconnects
                await asyncio.sleep(0.3)
                await _write_round(writer, rng, live)  # after it is back
            expected = await etcd_content(writer)
            await wait_for(lambda: recorder.last == expected)
        assert expected == _model(live)  # etcd holds exactly what the writer wrote
        assert len(recorder.sets) > 3


def _model(live: dict[str, bytes]) -> dict[str, list[str]]:
    """The registry the writes should produce, computed from the writer's own record."""
    out: dict[str, set[str]] = {}
    for key, value in live.items():
        data = json.loads(value)
        out.setdefault(key.split("/")[3], set()).add(f"{data['address']}:{data['port']}")
    return {k: sorted(v, key=endpoint_order) for k, v in out.items()}


async def test_compaction_past_the_watch_revision_relists_and_diffs(
    etcd_server: EtcdServer,
) -> None:
    """A watch resumed below the compacted revision re-lists, emits the exact diff, goes on."""
    async with EtcdClient(etcd_server.config()) as client:
        await client.put(b"/c/keep", b"k")
        await client.put(b"/c/gone", b"g")
        await client.put(b"/c/change", b"old")
        watcher = PrefixWatcher(client, b"/c/")
        changes = watcher.changes()
        await anext(changes)  # listed; the watch is not open yet
        await client.delete(b"/c/gone")
        await client.put(b"/c/change", b"new")
        revision = await client.put(b"/c/new", b"n")
        await client.compact(revision)
        with capture_logs() as logs:
            diff = await asyncio.wait_for(anext(changes), 10)
        assert sorted((e.kind.name, e.key, e.value) for e in diff) == [
            ("DELETE", b"/c/gone", b""),
            ("PUT", b"/c/change", b"new"),
            ("PUT", b"/c/new", b"n"),
        ]
        assert any(e["event"] == "etcd_watch_compacted" for e in logs)
        await client.put(b"/c/after", b"a")
        after = await asyncio.wait_for(anext(changes), 10)
        assert [e.key for e in after] == [b"/c/after"]
        assert watcher.mirror.next_watch_revision == revision + 2
        await changes.aclose()
