"""The etcd leader is killed while requests flow through Envoy: none fails, every registration
stays, and a change made afterwards reaches Envoy through the new leader.

First the leadership is moved (maintenance MoveLeader) to the member that serves the running
replica's watch (etcd's /metrics count watch streams), so that the kill breaks that watch as
well as the keep-alive of the backend that starts on the same member. The runner finds the
leader with etcd's maintenance Status (every member's, through etcd's JSON gateway) and kills
it by creating /control/kill-<member>: the member's entry script (scripts/compose/etcd.sh)
sends etcd SIGKILL, as `docker kill` would, and starts it again on its data directory once the
runner removes the file. No Docker socket is needed.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fixtures.etcd import leader_url, member_status, move_leader, watch_streams
from tests.harness.expect import Expected, applied, registry, set_policy
from tests.harness.stack import Load, Stack, requires_stack, wait_until
from xdscp.etcd import EtcdClient

pytestmark = [pytest.mark.compose, requires_stack]
TTL_S = 5  # scripts/compose/backend.sh registers with --ttl 5


def _answers(url: str) -> bool:
    """Whether the etcd member at `url` answers its Status RPC."""
    try:
        member_status(url, timeout_s=1.0)
    except OSError:
        return False
    return True


def _lead_where_the_replica_watches(stack: Stack) -> str:
    """Make the member serving the most watch streams (the running replica's) the leader."""
    watched = max(stack.etcd, key=watch_streams)
    move_leader(stack.etcd, watched, 30.0)
    return watched


def _registered(expected: Expected) -> set[tuple[str, str, str, int]]:
    return {(r.service, r.endpoint_id, r.host, r.port) for r in expected.registrations}


async def _watch_registrations(
    etcd: EtcdClient, before: set[tuple[str, str, str, int]], seconds: float
) -> int:
    """Read the registry for `seconds` (two TTLs: a lease left without keep-alive expires
    meanwhile); how many reads missed a registration that was there before the kill."""
    misses, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        misses += bool(before - _registered(await registry(etcd)))
        await asyncio.sleep(0.25)
    return misses


async def test_killing_the_etcd_leader_fails_no_request(
    stack: Stack, etcd: EtcdClient, started: Expected
) -> None:
    """With a request loop through Envoy, the etcd leader is SIGKILLed: the others elect a
    new one, every registration stays in etcd for two TTLs and after, a policy change then
    reaches Envoy, the member rejoins once restarted, and not one request failed."""
    before = await registry(etcd)
    leader = await asyncio.to_thread(_lead_where_the_replica_watches, stack)
    member, kill_file = stack.member(leader), stack.control / f"kill-{stack.member(leader)}"
    watches = await asyncio.to_thread(watch_streams, leader)
    load = Load(stack)
    load.start()
    try:
        await wait_until("requests flow", lambda: load.served >= 100, 30)
        kill_file.touch()
        killed = time.monotonic()
        await wait_until(f"{member} is down", lambda: not _answers(leader), 30)
        others = tuple(url for url in stack.etcd if url != leader)
        elected = await asyncio.to_thread(leader_url, others, 30.0)
        elected_s = time.monotonic() - killed
        misses = await _watch_registrations(etcd, _registered(before), 2 * TTL_S)
        began = time.monotonic()
        changed = await set_policy(stack, etcd, "--lb", "round_robin")
        await applied(stack, changed)
        applied_s = time.monotonic() - began  # the command, the new leader, watch, xDS, ACK
        kill_file.unlink()
        rejoin_s = await wait_until(f"{member} rejoins", lambda: _answers(leader), 60)
        await asyncio.to_thread(leader_url, stack.etcd, 30.0)  # all three agree again
    finally:
        kill_file.unlink(missing_ok=True)
        await load.stop()
    lost = _registered(before) - _registered(await registry(etcd))
    stack.record(
        "etcd_leader_kill", killed=member, watch_streams_on_it=watches,
        new_leader=stack.member(elected),
        served=load.served, failed=load.failed, elected_s=round(elected_s, 2),
        reads_missing_a_registration=misses, lost=sorted(map(str, lost)),
        policy_applied_s=round(applied_s, 2), rejoin_s=round(rejoin_s, 2),
    )  # fmt: skip
    assert load.failed == 0, load.errors[:5]
    assert not lost
    assert misses == 0
    assert load.served > 200
