"""An endpoint deregistered with `xdscp deregister` is gone from Envoy and gets no traffic."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.harness.expect import Expected, applied, registry, set_policy
from tests.harness.stack import Stack, count_backends, get, get_json, requires_stack, xdscp
from xdscp.etcd import EtcdClient

pytestmark = [pytest.mark.compose, requires_stack]
GONE = "b2"


def _envoy_hosts(stack: Stack) -> set[str]:
    """The web cluster's hosts in Envoy's /clusters (what it balances over right now)."""
    clusters = get_json(stack.envoy_admin, "/clusters?format=json")["cluster_statuses"]
    (web,) = [c for c in clusters if c["name"] == "web"]
    return {
        f"{h['address']['socket_address']['address']}:{h['address']['socket_address']['port_value']}"
        for h in web.get("host_statuses", [])
    }


async def test_deregistered_endpoint_is_gone_and_gets_no_traffic(
    stack: Stack, etcd: EtcdClient, started: Expected
) -> None:
    """Round robin over b0, b1, b2 (b2 answers a third); `xdscp deregister web ID` of b2:
    once Envoy holds the new endpoints, b2 is not among its hosts and 300 requests split
    150/150 over b0 and b1, while b2 itself still answers when asked directly (so its
    silence comes from the deregistration, not from a dead backend)."""
    before = await set_policy(stack, etcd, "--lb", "round_robin")
    await applied(stack, before)
    assert (await asyncio.to_thread(count_backends, stack, 30))[GONE] == 10
    reg = before.registration(GONE)
    began = time.monotonic()
    await asyncio.to_thread(xdscp, stack, "deregister", "web", reg.endpoint_id)
    after = await registry(etcd)
    assert GONE not in {r.metadata.get("backend") for r in after.registrations}
    await applied(stack, after)
    applied_s = time.monotonic() - began  # the command, the watch, translation, EDS, the ACK
    hosts = await asyncio.to_thread(_envoy_hosts, stack)
    assert f"{reg.host}:{reg.port}" not in hosts
    assert len(hosts) == 2, hosts
    split = await asyncio.to_thread(count_backends, stack, 300)
    stack.record(
        "deregistered", endpoint=reg.endpoint_id, split_after=dict(split),
        applied_s=round(applied_s, 2),
    )  # fmt: skip
    assert split == {"b0": 150, "b1": 150}, split
    status, body = await asyncio.to_thread(get, stack.backends[GONE], "/")
    assert (status, json.loads(body)) == (200, {"backend": GONE})
