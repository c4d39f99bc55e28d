"""Helpers for the etcd integration tests (the publish recorder and bounded waiting are
`xdscp.testing`'s)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from xdscp.etcd import EtcdClient
from xdscp.sources.etcd import EtcdRegistrySource
from xdscp.testing import Recorder

ROOT = "/xdscp/services/"


@contextlib.asynccontextmanager
async def running(source: EtcdRegistrySource, recorder: Recorder) -> AsyncIterator[None]:
    """Run a source in a task for the duration of the block, cancelling it afterwards."""
    task = asyncio.create_task(source.run(recorder))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # the source failed: fail the test


def endpoint_json(ip: str, port: int, **extra: object) -> bytes:
    """A native registration value."""
    return json.dumps({"address": ip, "port": port} | extra).encode()


async def etcd_content(client: EtcdClient) -> dict[str, list[str]]:
    """What etcd holds under the native root, as service -> sorted endpoint keys."""
    kvs, _ = await client.get_prefix(ROOT.encode())
    out: dict[str, set[str]] = {}
    for kv in kvs:
        service = kv.key.decode().removeprefix(ROOT).split("/")[0]
        data = json.loads(kv.value)
        out.setdefault(service, set()).add(f"{data['address']}:{data['port']}")
    return {k: sorted(v, key=endpoint_order) for k, v in out.items()}


def endpoint_order(key: str) -> tuple[int, ...]:
    """Sort IPv4 `ip:port` strings the way the model orders endpoints (same locality)."""
    ip, port = key.rsplit(":", 1)
    return (*(int(p) for p in ip.split(".")), int(port))
