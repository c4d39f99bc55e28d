"""Graceful drain end to end, every part real and in its own process: an etcd, `xdscp serve`
fed by it, an Envoy and a grpc-go client of that plane, two gRPC demo backends registered by
`xdscp register`, and the drain itself started by the CLI (`xdscp deregister --drain`, or
SIGTERM to `xdscp register`) while both clients send requests back to back.

Each client must see 0 failed requests (printed with its totals), and the drained backend
must receive no new request once both clients have ACKed the DRAINING endpoint (the requests
in flight at the ACK are allowed to finish: two rounds of each loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2

from tests.fixtures.etcd import EtcdServer
from tests.harness.grpc_clients import ClientProcesses, GrpcClient
from tests.harness.plane import running_backends
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap, grpc_bootstrap
from xdscp.demo.admin import get_json
from xdscp.demo.backend import WHO_METHOD, Backend, BackendConfig
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port, wait_for, wait_until

pytestmark = [pytest.mark.grpc, pytest.mark.envoy, pytest.mark.etcd, pytest.mark.slow]
DRAIN_S = 6.0
CLA = "ClusterLoadAssignment"


def xdscp(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """`python -m xdscp ARGS`, its stderr in `log`, its stdout piped."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "xdscp", "--log-format", "json", *args],
            stdout=subprocess.PIPE, stderr=sink, stdin=subprocess.DEVNULL,
        )  # fmt: skip


class Loop:
    """Requests sent back to back until stopped: answers by backend, and failures."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.answers: Counter[str] = Counter()
        self.failures = 0
        self.rounds = 0  # requests (Envoy) or batches of 50 (grpc-go) finished
        self.stop = asyncio.Event()
        self.done = False

    async def through_envoy(self, port: int) -> None:
        options = [("grpc.default_authority", "web")]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options) as channel:
            who = channel.unary_unary(
                WHO_METHOD,
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
                response_deserializer=wrappers_pb2.StringValue.FromString,
            )
            while not self.stop.is_set():
                try:
                    self.answers[(await who(wrappers_pb2.StringValue(), timeout=5)).value] += 1
                except grpc.aio.AioRpcError:
                    self.failures += 1
                self.rounds += 1
        self.done = True

    async def through_client(self, client: GrpcClient) -> None:
        while not self.stop.is_set():
            result = await client.call(n=50, concurrency=2)
            self.answers.update(result["counts"])
            self.failures += len(result["errors"])
            self.rounds += 1
        self.done = True

    def report(self) -> str:
        total = sum(self.answers.values()) + self.failures
        return f"{self.label}: {total} requests, {self.failures} failed, {dict(self.answers)}"


@dataclass
class Stack:
    """The running processes and the two request loops."""

    etcd: EtcdServer
    tmp: Path
    admin_port: int
    backends: list[Backend]
    loops: tuple[Loop, Loop]
    envoy: EnvoyProcess
    registrars: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    before: dict[str, dict[str, Any]] = field(default_factory=dict)  # node statuses

    def register(self, backend: Backend, *extra: str) -> None:
        """`xdscp register web 127.0.0.1:PORT` for `backend`, kept running."""
        process = xdscp(
            "register", "web", f"127.0.0.1:{backend.grpc_port}", "--etcd", self.etcd.url,
            "--ttl", "5", *extra, log=self.tmp / f"register-{backend.config.name}.log",
        )  # fmt: skip
        assert process.stdout is not None
        assert process.stdout.readline().startswith(b"registered ")
        self.registrars[backend.config.name] = process

    def cli(self, *args: str) -> subprocess.Popen[bytes]:
        """Another `xdscp` command against the same etcd."""
        return xdscp(*args, "--etcd", self.etcd.url, log=self.tmp / "cli.log")

    async def nodes(self) -> dict[str, dict[str, Any]]:
        """xdscp's status of each connected node, by node id."""
        entries = await asyncio.to_thread(get_json, self.admin_port, "/debug/nodes")
        return {entry["node"]: entry for entry in entries}

    async def acked_changed(self, before: dict[str, dict[str, Any]]) -> None:
        """Wait until each node ACKed a CLA other than the one it held in `before`."""

        async def moved() -> bool:
            now = await self.nodes()
            for node_id, old in before.items():
                types = now[node_id]["types"]
                assert not now[node_id].get("last_nack"), now[node_id]
                if not all(t["in_sync"] for t in types.values()):
                    return False
                if types[CLA]["acked_version"] == old["types"][CLA]["acked_version"]:
                    return False
            return True

        await wait_for(moved, 20)

    async def rounds(self, more: int) -> None:
        """Wait until each loop finished `more` more rounds."""
        targets = [loop.rounds + more for loop in self.loops]
        loops = list(zip(self.loops, targets, strict=True))
        await wait_for(lambda: all(loop.rounds >= t for loop, t in loops), 60)

    async def answers(self, name: str, more: int) -> None:
        """Wait until each loop got `more` more answers from backend `name`."""
        targets = [loop.answers[name] + more for loop in self.loops]
        loops = list(zip(self.loops, targets, strict=True))
        await wait_for(lambda: all(loop.answers[name] >= t for loop, t in loops), 60)


async def _serve(etcd: EtcdServer, tmp: Path) -> tuple[subprocess.Popen[bytes], int, int, int]:
    xds, admin, listener = free_port(), free_port(), free_port()
    process = xdscp(
        "serve", "--etcd", etcd.url, "--xds", f"127.0.0.1:{xds}", "--admin",
        f"127.0.0.1:{admin}", "--listener", f"127.0.0.1:{listener}", log=tmp / "serve.log",
    )  # fmt: skip

    def ready() -> bool:
        assert process.poll() is None, (tmp / "serve.log").read_text()[-2000:]
        conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=2)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    await asyncio.to_thread(wait_until, ready, 30)
    return process, xds, admin, listener


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def _stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        _stop(process)


async def _envoy(xds: int, tmp: Path) -> EnvoyProcess:
    options = EnvoyBootstrapOptions(
        node_id="envoy-0", servers=(XdsServer("127.0.0.1", xds),), admin_port=0
    )
    envoy = EnvoyProcess(envoy_bootstrap(options), tmp / "envoy")
    await asyncio.to_thread(envoy.start)
    return envoy


@contextlib.asynccontextmanager
async def drain_stack(
    etcd: EtcdServer, tmp: Path, go_binary: str, b0_args: tuple[str, ...]
) -> AsyncIterator[Stack]:
    """Everything running and both loops answered 20 times by b0 and by b1; all stopped on
    leaving.
    b0 is registered with `b0_args` added to `xdscp register`."""
    configs = [BackendConfig(f"b{i}", http_port=-1) for i in range(2)]
    clients = ClientProcesses(lambda: go_binary)
    async with running_backends(configs) as backends, contextlib.AsyncExitStack() as stack:
        serve, xds, admin, listener = await _serve(etcd, tmp)
        stack.callback(_stop, serve)
        policy = xdscp("policy", "set", "web", "--lb", "round_robin", "--upstream-protocol",
                       "http2", "--etcd", etcd.url, log=tmp / "cli.log")  # fmt: skip
        assert await asyncio.to_thread(policy.wait, 30) == 0
        envoy = await _envoy(xds, tmp)
        stack.callback(envoy.stop)
        running = Stack(etcd, tmp, admin, backends, (Loop("envoy"), Loop("grpc-go")), envoy)
        stack.callback(_stop_all, running.registrars)
        running.register(backends[0], *b0_args)
        running.register(backends[1])
        stack.push_async_callback(clients.stop)
        go = await clients.start("go", grpc_bootstrap("go-0", (XdsServer("127.0.0.1", xds),)))
        tasks = [
            asyncio.create_task(running.loops[0].through_envoy(listener)),
            asyncio.create_task(running.loops[1].through_client(go)),
        ]

        async def stop_loops() -> None:
            for loop in running.loops:
                loop.stop.set()
            await asyncio.gather(*tasks)

        stack.push_async_callback(stop_loops)
        for name in ("b0", "b1"):
            await running.answers(name, 20)
        yield running


def _eds_health(envoy: EnvoyProcess, port: int) -> str:
    """The EDS health status Envoy's /clusters shows for the web host on `port`."""
    for cluster in get_json(envoy.admin_port, "/clusters?format=json")["cluster_statuses"]:
        for host in cluster.get("host_statuses", []) if cluster["name"] == "web" else []:
            if host["address"]["socket_address"]["port_value"] == port:
                return str(host["health_status"].get("eds_health_status", "HEALTHY"))
    return "absent"


async def _drain_under_load(stack: Stack, drainer: subprocess.Popen[bytes]) -> None:
    """`drainer` (already told to drain b0) marks it DRAINING: once both clients ACKed that
    and finished what was in flight, b0 gets nothing more, through the deletion that follows
    the drain, b0's stop and 200 more answers from b1 per client; no request fails."""
    b0 = stack.backends[0]
    await stack.acked_changed(stack.before)
    assert drainer.poll() is None, "the drain ended before both clients ACKed DRAINING"
    assert await asyncio.to_thread(_eds_health, stack.envoy, b0.grpc_port) == "DRAINING"
    draining = await stack.nodes()
    await stack.rounds(2)  # what was in flight at the ACKs is done
    drained = (stack.loops[0].answers["b0"], stack.loops[1].answers["b0"], b0.grpc_calls)
    assert await asyncio.to_thread(drainer.wait, DRAIN_S + 30) == 0
    await stack.acked_changed({"envoy-0": draining["envoy-0"]})  # Envoy drops b0
    assert await asyncio.to_thread(_eds_health, stack.envoy, b0.grpc_port) == "absent"
    await b0.stop()
    await stack.answers("b1", 200)
    for loop in stack.loops:
        loop.stop.set()
    await wait_for(lambda: all(loop.done for loop in stack.loops), 60)
    for loop in stack.loops:
        print(loop.report())
    print(f"b0 answered {drained[2]} calls in all, none after both clients ACKed DRAINING")
    assert [loop.failures for loop in stack.loops] == [0, 0]
    assert (stack.loops[0].answers["b0"], stack.loops[1].answers["b0"], b0.grpc_calls) == drained
    assert all(loop.answers["b0"] > 0 and loop.answers["b1"] >= 200 for loop in stack.loops)


async def test_cli_deregister_drain_fails_no_request_through_envoy_or_grpc_go(
    etcd_server: EtcdServer, tmp_path: Path, go_client_binary: str
) -> None:
    """`xdscp deregister web 127.0.0.1:PORT --drain 6` under load."""
    async with drain_stack(etcd_server, tmp_path, go_client_binary, ("--drain", "0")) as stack:
        b0 = stack.backends[0]
        stack.before = await stack.nodes()
        drainer = stack.cli("deregister", "web", f"127.0.0.1:{b0.grpc_port}",
                            "--drain", f"{DRAIN_S:g}")  # fmt: skip
        await _drain_under_load(stack, drainer)


async def test_register_process_drains_on_sigterm_failing_no_request(
    etcd_server: EtcdServer, tmp_path: Path, go_client_binary: str
) -> None:
    """SIGTERM to the `xdscp register` process of b0 (its default drain, 5 s) under load;
    it says it drains, then exits 0 once the lease is revoked."""
    async with drain_stack(etcd_server, tmp_path, go_client_binary, ()) as stack:
        registrar = stack.registrars["b0"]
        stack.before = await stack.nodes()
        registrar.send_signal(signal.SIGTERM)
        await _drain_under_load(stack, registrar)
        assert registrar.stdout is not None
        assert b"draining /xdscp/services/web/" in registrar.stdout.read()
