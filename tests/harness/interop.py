"""gRPC's xDS interop programs (tests/interop/go/interopclient, interopserver) driven the way
grpc/grpc's xDS test driver drives them (`doc/xds-test-descriptions.md`,
`tools/run_tests/run_xds_tests.py`).

The grpc.testing messages are read from the programs themselves by server reflection (both
register it beside their services), so the driver speaks exactly the generated stubs of
grpc-go's `interop/grpc_testing`. The waits are the driver's: a condition on the stats of the
next `num_rpcs` RPCs (`GetClientStats`), asked again until it holds or its deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import xdscp.translate  # noqa: F401  (registers every resource type xdscp sends, for CSDS JSON)
from tests.harness.serve import Serve
from xdscp.clients import XdsServer, grpc_bootstrap
from xdscp.etcd import EtcdClient
from xdscp.model import Locality
from xdscp.registry import build_registration, register
from xdscp.testing import free_port, wait_for

STATS_SERVICE = "grpc.testing.LoadBalancerStatsService"
CONFIGURE_SERVICE = "grpc.testing.XdsUpdateClientConfigureService"
HEALTH_SERVICE = "grpc.testing.XdsUpdateHealthService"
START_LIMIT_S = 30.0
ATTEMPTS = 3  # starts on a new free port when the one given was taken meanwhile
T = TypeVar("T")


class Testing:
    """The grpc.testing services, as one program's reflection describes them: `method(...)`
    gives a callable on a channel and the request's message class."""

    def __init__(self, address: str) -> None:
        with grpc.insecure_channel(address) as channel:
            pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
            self._services = {
                name: pool.FindServiceByName(name)
                for name in (STATS_SERVICE, CONFIGURE_SERVICE, HEALTH_SERVICE)
            }

    def method(self, channel: grpc.aio.Channel, service: str, name: str) -> tuple[Any, Any]:
        """`(call, Request)` of `service`'s method `name` on `channel`."""
        found = self._services[service].FindMethodByName(name)
        request = message_factory.GetMessageClass(found.input_type)
        response = message_factory.GetMessageClass(found.output_type)
        call = channel.unary_unary(
            f"/{service}/{name}",
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )
        return call, request


async def _serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


async def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(*args, stdout=sink, stderr=sink, env=env)


async def _up(process: Process, ready: Callable[[], Awaitable[T | None]], what: str) -> T | None:
    """Wait until `ready()` gives a value (returned), or the process exits (None)."""

    async def probe() -> tuple[T | None] | None:
        if process.returncode is not None:
            return (None,)
        value = await ready()
        return (value,) if value else None

    found = await wait_for(probe, START_LIMIT_S, what=what)
    assert found is not None
    return found[0]


async def _stop(process: Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


class InteropServer:
    """One test server ("backend"): `--port`, answering as `name` (`--host_name_override`)."""

    def __init__(self, binary: str, name: str, logs: Path) -> None:
        self.binary, self.name, self.port, self._logs = binary, name, free_port(), logs
        self.process: Process | None = None
        self._testing: Testing | None = None

    @property
    def address(self) -> str:
        """`127.0.0.1:PORT`, where it serves every service."""
        return f"127.0.0.1:{self.port}"

    async def start(self, *, same_port: bool = False) -> None:
        """Start and wait until its health service answers; a port taken meanwhile by another
        process is replaced by a new one, unless `same_port` (a restart: it is registered)."""
        for attempt in range(ATTEMPTS):
            process = self.process = await _spawn(
                [self.binary, f"--port={self.port}", f"--maintenance_port={self.port}",
                 f"--host_name_override={self.name}", f"--server_id={self.name}"],
                self._logs / f"{self.name}.log",
            )  # fmt: skip
            if await _up(process, lambda: _serving(self.address), f"{self.name} serving"):
                return
            if same_port or attempt == ATTEMPTS - 1:
                raise AssertionError(f"{self.name} exited: see its log")
            self.port = free_port()

    async def stop(self) -> None:
        """Stop the process (SIGTERM: a grpc-go program without a handler exits at once)."""
        if self.process is not None:
            await _stop(self.process)

    async def set_serving(self, serving: bool) -> None:
        """XdsUpdateHealthService SetServing / SetNotServing (what its health service says)."""
        if self._testing is None:
            self._testing = await asyncio.to_thread(Testing, self.address)
        async with grpc.aio.insecure_channel(self.address) as channel:
            name = "SetServing" if serving else "SetNotServing"
            call, request = self._testing.method(channel, HEALTH_SERVICE, name)
            await call(request(), timeout=5)


@dataclass(frozen=True)
class Stats:
    """A LoadBalancerStatsResponse: RPCs per answering server, failures, per method."""

    rpcs_by_peer: dict[str, int]
    num_failures: int
    rpcs_by_method: dict[str, dict[str, int]]


class InteropClient:
    """The test client: `--server=xds:///SERVICE` at `qps`, bootstrap given inline."""

    def __init__(
        self,
        binary: str,
        service: str,
        bootstrap: dict[str, Any],
        logs: Path,
        *,
        qps: int = 100,
        num_channels: int = 1,
        rpc: str = "UnaryCall",
        fail_on_failed_rpc: bool = False,
    ) -> None:
        self.stats_port, self.qps = free_port(), qps
        self._env = {**os.environ, "GRPC_XDS_BOOTSTRAP_CONFIG": json.dumps(bootstrap)}
        self._env.pop("GRPC_XDS_BOOTSTRAP", None)
        self._args = [
            binary, f"--server=xds:///{service}", f"--qps={qps}",
            f"--num_channels={num_channels}", f"--rpc={rpc}", "--rpc_timeout_sec=5",
            f"--fail_on_failed_rpc={str(fail_on_failed_rpc).lower()}",
        ]  # fmt: skip
        self._log = logs / f"client-{service}.log"
        self.process: Process | None = None
        self._channel: grpc.aio.Channel | None = None
        self._testing: Testing | None = None

    async def start(self) -> InteropClient:
        """Start it and wait until its stats port answers reflection (on a new port if the
        one it was given is taken meanwhile by another process)."""

        def describe() -> Testing | None:
            try:
                return Testing(f"127.0.0.1:{self.stats_port}")
            except grpc.RpcError:
                return None

        for attempt in range(ATTEMPTS):
            args = [*self._args, f"--stats_port={self.stats_port}"]
            process = self.process = await _spawn(args, self._log, self._env)
            found = await _up(process, lambda: asyncio.to_thread(describe), "the stats port")
            if isinstance(found, Testing):
                self._testing = found
                self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.stats_port}")
                return self
            assert attempt < ATTEMPTS - 1, "the interop client exited: see its log"
            self.stats_port = free_port()
        raise AssertionError("unreachable")

    @property
    def running(self) -> bool:
        """Still running (with `fail_on_failed_rpc`: no RPC failed since one succeeded)."""
        return self.process is not None and self.process.returncode is None

    def _started(self) -> tuple[Testing, grpc.aio.Channel]:
        assert self._testing is not None, "start() it first"
        assert self._channel is not None
        return self._testing, self._channel

    async def stats(self, num_rpcs: int) -> Stats:
        """GetClientStats: the next `num_rpcs` RPCs (those not done within twice the time
        they take at `qps`, plus 10 s, count as failures)."""
        testing, channel = self._started()
        call, request = testing.method(channel, STATS_SERVICE, "GetClientStats")
        timeout_sec = 2 * num_rpcs // self.qps + 10
        answer = await call(
            request(num_rpcs=num_rpcs, timeout_sec=timeout_sec), timeout=timeout_sec + 10
        )
        return Stats(
            dict(answer.rpcs_by_peer),
            answer.num_failures,
            {m: dict(p.rpcs_by_peer) for m, p in answer.rpcs_by_method.items()},
        )

    async def accumulated(self) -> dict[str, Any]:
        """GetClientAccumulatedStats, as JSON (proto field names)."""
        testing, channel = self._started()
        call, request = testing.method(channel, STATS_SERVICE, "GetClientAccumulatedStats")
        answer = await call(request(), timeout=10)
        return json_format.MessageToDict(answer, preserving_proto_field_name=True)

    async def configure(
        self,
        types: Sequence[str],
        metadata: dict[str, list[tuple[str, str]]] | None = None,
        timeout_sec: int = 0,
    ) -> None:
        """XdsUpdateClientConfigureService Configure: send `types` (EMPTY_CALL, UNARY_CALL)
        from now on, with `metadata` per type, each RPC's deadline `timeout_sec` (0: the
        client's --rpc_timeout_sec)."""
        testing, channel = self._started()
        call, request = testing.method(channel, CONFIGURE_SERVICE, "Configure")
        message = request(types=list(types), timeout_sec=timeout_sec)
        for typ, pairs in (metadata or {}).items():
            for key, value in pairs:
                message.metadata.add(type=typ, key=key, value=value)
        await call(message, timeout=10)

    async def csds(self) -> dict[str, Any]:
        """The client's own CSDS (admin services on its stats port): its first ClientConfig as
        JSON (proto field names), as the driver's `get_client_xds_config_dump` reads it."""
        stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(self._started()[1])
        response = await stub.FetchClientStatus(csds_pb2.ClientStatusRequest(), timeout=10)
        configs = json_format.MessageToDict(response, preserving_proto_field_name=True)
        return dict(configs.get("config", [{}])[0])

    async def stop(self) -> None:
        """Stop the process and close the stats channel."""
        if self._channel is not None:
            await self._channel.close()
        if self.process is not None:
            await _stop(self.process)


async def all_rpcs_go_to(
    client: InteropClient,
    backends: Sequence[str],
    within: float,
    *,
    num_rpcs: int = 100,
    allow_failures: bool = False,
) -> Stats:
    """The driver's `wait_until_all_rpcs_go_to_given_backends` (`_or_fail` with
    `allow_failures`): ask for the stats of the next `num_rpcs` RPCs until every backend
    named received one and no other did (and, unless allowed, none failed); those stats.
    AssertionError naming what was wrong the last time when `within` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        stats = await client.stats(num_rpcs)
        missing = [b for b in backends if b not in stats.rpcs_by_peer]
        if missing:
            wrong = f"{missing} received no RPC: {stats}"
        elif len(stats.rpcs_by_peer) > len(backends):
            wrong = f"an unexpected backend received RPCs: {stats}"
        elif not allow_failures and stats.num_failures > 0:
            wrong = f"{stats.num_failures} RPCs failed: {stats}"
        else:
            return stats
        assert time.monotonic() < deadline, wrong


async def methods_go_to(
    client: InteropClient, expected: dict[str, Sequence[str]], within: float
) -> Stats:
    """The driver's `compare_expected_instances`, asked again until it holds: in the stats of
    the next 100 RPCs, each method (UnaryCall, EmptyCall) was answered by exactly the backends
    given for it, and no RPC failed; those stats. AssertionError when `within` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        stats = await client.stats(100)
        got = {method: set(peers) for method, peers in stats.rpcs_by_method.items()}
        if got == {m: set(b) for m, b in expected.items()} and not stats.num_failures:
            return stats
        assert time.monotonic() < deadline, f"not {expected}: {stats}"


def results(accumulated: dict[str, Any], method: str) -> dict[int, int]:
    """RPCs of `method` (UNARY_CALL, EMPTY_CALL) finished so far, by status code, from a
    GetClientAccumulatedStats answer."""
    per = accumulated.get("stats_per_method", {}).get(method, {})
    return {int(code): count for code, count in per.get("result", {}).items()}


def _finished(
    client: InteropClient, before: dict[str, Any], methods: list[str], count: int
) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    """A probe: GetClientAccumulatedStats once `count` more RPCs of each method finished
    than in `before`, else None."""

    async def probe() -> dict[str, Any] | None:
        now = await client.accumulated()
        done = all(
            sum(results(now, m).values()) - sum(results(before, m).values()) >= count
            for m in methods
        )
        return now if done else None

    return probe


async def statuses_settle_to(
    client: InteropClient,
    expected: dict[str, dict[int, float]],
    within: float,
    *,
    window: int = 1000,
    tolerance: float = 0.1,
) -> dict[str, dict[int, int]]:
    """The driver's check of fault_injection and timeout, counted in RPCs instead of seconds:
    over a window of `window` finished RPCs of each method expected, the share of each status
    code given (percent) within `tolerance` of its expected count (the driver's 10 %), and no
    other code (stricter than the driver, which counts only the codes it names: a window
    holding RPCs of the configuration before fails); a window failing it is followed by the
    next one, until `within` seconds pass (AssertionError). The window's counts."""
    deadline = time.monotonic() + within
    before = await client.accumulated()
    while True:
        after = await wait_for(
            _finished(client, before, list(expected), window),
            max(deadline - time.monotonic(), 0.1), interval=0.2,
            what=f"{window} more RPCs finished",
        )  # fmt: skip
        counts = {
            m: {
                code: results(after, m).get(code, 0) - results(before, m).get(code, 0)
                for code in set(results(after, m)) | set(results(before, m))
            }
            for m in expected
        }
        wrong = []
        for method, shares in expected.items():
            total = sum(counts[method].values())
            others = {c: n for c, n in counts[method].items() if n and c not in shares}
            if others:
                wrong.append(f"{method}: unexpected status codes {others}")
            for code, percent in shares.items():
                want = percent * total / 100
                if abs(counts[method].get(code, 0) - want) > want * tolerance:
                    wrong.append(f"{method} status {code}: {counts[method].get(code, 0)} of "
                                 f"{total}, want ~{want:.0f}")  # fmt: skip
        if not wrong:
            return {m: {c: n for c, n in v.items() if n} for m, v in counts.items()}
        assert time.monotonic() < deadline, f"{wrong}: {counts}"
        before = after


class Group:
    """An "instance group": test servers registered in etcd under one service, in one
    locality and priority, each holding its registration (a lease) until `remove()`."""

    def __init__(self, servers: list[InteropServer], registrations: contextlib.AsyncExitStack):
        self.servers, self._registrations = servers, registrations

    @property
    def names(self) -> list[str]:
        """The servers' hostnames, the peers the client's stats name."""
        return [s.name for s in self.servers]

    async def remove(self) -> None:
        """Deregister every server (their leases revoked: the keys go at once)."""
        await self._registrations.aclose()

    async def set_serving(self, serving: bool, count: int | None = None) -> None:
        """SetServing / SetNotServing on the first `count` servers (all by default)."""
        await asyncio.gather(*(s.set_serving(serving) for s in self.servers[:count]))


class Interop:
    """A test's xDS interop world: `xdscp serve --etcd`, the servers it starts in groups and
    registers in etcd, the clients it starts with bootstraps pointing at serve."""

    def __init__(
        self, etcd: EtcdClient, serve: Serve, client_binary: str, server_binary: str, logs: Path
    ) -> None:
        self.etcd, self.serve, self.logs = etcd, serve, logs
        self._client_binary, self._server_binary = client_binary, server_binary
        self._servers: list[InteropServer] = []
        self._groups: list[Group] = []
        self._clients: list[InteropClient] = []

    async def group(
        self,
        service: str,
        names: Sequence[str],
        *,
        zone: str,
        priority: int = 0,
        sub_zone: str = "",
    ) -> Group:
        """Start a server per name and register each under `service` in `zone`."""
        servers = [InteropServer(self._server_binary, name, self.logs) for name in names]
        self._servers.extend(servers)
        await asyncio.gather(*(s.start() for s in servers))
        stack = contextlib.AsyncExitStack()
        for server in servers:
            registration = build_registration(
                service, "127.0.0.1", server.port,
                locality=Locality(zone=zone, sub_zone=sub_zone), priority=priority,
            )  # fmt: skip
            await stack.enter_async_context(register(self.etcd, registration))
        group = Group(servers, stack)
        self._groups.append(group)
        return group

    async def client(
        self, service: str, *, zone: str, qps: int = 100, fail_on_failed_rpc: bool = False
    ) -> InteropClient:
        """A test client of `xds:///service`, its node in `zone`, started."""
        bootstrap = grpc_bootstrap(
            f"interop-{service}", (XdsServer("127.0.0.1", self.serve.xds),),
            locality=Locality(zone=zone),
        )  # fmt: skip
        client = InteropClient(
            self._client_binary, service, bootstrap, self.logs,
            qps=qps, fail_on_failed_rpc=fail_on_failed_rpc,
        )  # fmt: skip
        self._clients.append(client)
        return await client.start()

    async def close(self) -> None:
        """Stop every client and server, deregister every group."""
        for client in self._clients:
            await client.stop()
        for group in self._groups:
            await group.remove()
        for server in self._servers:
            await server.stop()
