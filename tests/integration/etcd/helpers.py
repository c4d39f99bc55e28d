"""Helpers for the etcd integration tests (the publish recorder, bounded waiting and the source
runner are `xdscp.testing`'s)."""

from __future__ import annotations

import json

from xdscp.etcd import EtcdClient

ROOT = "/xdscp/services/"


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
