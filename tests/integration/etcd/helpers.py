"""Helpers for the etcd integration tests: a publish recorder and bounded waiting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable

from xdscp.etcd import EtcdClient
from xdscp.model import ServiceSet
from xdscp.sources.etcd import EtcdRegistrySource

ROOT = "/xdscp/services/"


class Recorder:
    """Records every published service set."""

    def __init__(self) -> None:
        self.sets: list[ServiceSet] = []
        self.changed = asyncio.Event()

    def __call__(self, services: ServiceSet) -> None:
        self.sets.append(services)
        self.changed.set()

    @property
    def last(self) -> dict[str, list[str]]:
        """The last published set as service -> endpoint keys."""
        if not self.sets:
            return {}
        return {n: [e.key for e in s.endpoints] for n, s in self.sets[-1].items()}


async def wait_for(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll `predicate` until true, failing after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


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
