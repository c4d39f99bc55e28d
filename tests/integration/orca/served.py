"""The ORCA stack as users run it: etcd, `xdscp serve --etcd`, three `xdscp backend --capacity`
processes registered by `xdscp register` (equal registered weights), the policy stored by
`xdscp policy set`, and the clients of that plane: an Envoy (bootstrap pointing at serve's
ADS) and proxyless grpc-go and grpcio processes (`xds:///web`).

Shares are measured in windows of calls and compared with the capacities' shares; the
helpers wait on counts of calls and on the clients' own weights, never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

from tests.fixtures.etcd import EtcdServer
from tests.integration.orca.harness import BackendProcess, backends
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.demo.backend import WHO_METHOD
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port, wait_until

SERVICE = "web"
SPECS = [("one", 100.0, "bin"), ("two", 200.0, "bin"), ("four", 400.0, "bin")]
CSWRR_FLAGS = (
    "--lb", "client_side_weighted_round_robin", "--upstream-protocol", "http2",
    "--blackout-period", "1s", "--weight-update-period", "100ms",
)  # fmt: skip
Send = Callable[[int], Awaitable[Counter[str]]]


def xdscp(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """`python -m xdscp ARGS`, its stderr appended to `log`, its stdout piped."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "xdscp", "--log-format", "json", *args],
            stdout=subprocess.PIPE, stderr=sink, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Killed: a terminated registrar would drain its endpoint first, for nothing here."""
    if process.poll() is None:
        process.kill()
    process.wait()


def _admin(port: int, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body.startswith((b"{", b"[")) else None
    finally:
        conn.close()


@dataclass
class Served:
    """The running stack: serve's ports, the backends, Envoy, the processes to stop."""

    etcd: EtcdServer
    tmp: Path
    xds_port: int
    admin_port: int
    listener_port: int
    backends: list[BackendProcess]
    envoy: EnvoyProcess | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The backends' names, in SPECS order."""
        return [b.name for b in self.backends]

    def cli(self, *args: str) -> str:
        """`xdscp ARGS --etcd URL` to its end (exit 0); its stdout."""
        process = xdscp(*args, "--etcd", self.etcd.url, log=self.tmp / "cli.log")
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0, (self.tmp / "cli.log").read_text()[-2000:]
        return out.decode()

    def register(self, backend: BackendProcess, zone: str = "") -> None:
        """`xdscp register web 127.0.0.1:GRPC_PORT [--zone ZONE]`, kept running (weight 1,
        the default)."""
        process = xdscp(
            "register", SERVICE, f"127.0.0.1:{backend.grpc_port}", "--etcd", self.etcd.url,
            "--ttl", "10", *(("--zone", zone) if zone else ()),
            log=self.tmp / f"register-{backend.name}.log",
        )  # fmt: skip
        self.processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().startswith(b"registered ")

    def nodes(self) -> dict[str, dict[str, Any]]:
        """xdscp's status of each connected node, by node id."""
        _, entries = _admin(self.admin_port, "/debug/nodes")
        return {entry["node"]: entry for entry in entries}

    def envoy_stat(self, name: str) -> int:
        """One of Envoy's counters or gauges (0 when absent)."""
        assert self.envoy is not None
        text = self.envoy.admin(f"/stats?filter=^{re.escape(name)}$")
        return int(text.split(":")[1]) if ":" in text else 0

    def envoy_weights(self) -> dict[int, int]:
        """The weight Envoy's balancer gives each host of `web` (port → weight)."""
        assert self.envoy is not None
        document = json.loads(self.envoy.admin("/clusters?format=json"))
        hosts = [
            host
            for cluster in document["cluster_statuses"]
            if cluster["name"] == SERVICE
            for host in cluster.get("host_statuses", [])
        ]
        return {
            host["address"]["socket_address"]["port_value"]: int(host.get("weight", 1))
            for host in hosts
        }


async def start_serve(stack: Served, log: str = "serve.log") -> subprocess.Popen[bytes]:
    """`xdscp serve --etcd` on `stack`'s ports (its log in `log` under `stack.tmp`), ready."""
    process = xdscp(
        "serve", "--etcd", stack.etcd.url, "--xds", f"127.0.0.1:{stack.xds_port}",
        "--admin", f"127.0.0.1:{stack.admin_port}",
        "--listener", f"127.0.0.1:{stack.listener_port}", log=stack.tmp / log,
    )  # fmt: skip

    def ready() -> bool:
        assert process.poll() is None, (stack.tmp / log).read_text()[-2000:]
        try:
            return _admin(stack.admin_port, "/readyz")[0] == 200
        except OSError:
            return False

    await asyncio.to_thread(wait_until, ready, 60)
    return process


@contextlib.asynccontextmanager
async def served(
    etcd: EtcdServer,
    tmp: Path,
    policy: Sequence[str] = CSWRR_FLAGS,
    *,
    with_envoy: bool,
    zones: Sequence[str] = ("", "", ""),
) -> AsyncIterator[Served]:
    """The whole stack, `policy` stored by `xdscp policy set web POLICY` before anything
    registers (each backend in its zone of `zones`); every process stopped on leaving."""
    with backends(SPECS) as started:
        stack = Served(etcd, tmp, free_port(), free_port(), free_port(), started)
        try:
            stack.processes.append(await start_serve(stack))
            await asyncio.to_thread(stack.cli, "policy", "set", SERVICE, *policy)
            for backend, zone in zip(started, zones, strict=True):
                await asyncio.to_thread(stack.register, backend, zone)
            if with_envoy:
                options = EnvoyBootstrapOptions(
                    node_id="envoy-0",
                    servers=(XdsServer("127.0.0.1", stack.xds_port),),
                    admin_port=0,
                )
                stack.envoy = EnvoyProcess(envoy_bootstrap(options), tmp / "envoy")
                await asyncio.to_thread(stack.envoy.start)
            yield stack
        finally:
            if stack.envoy is not None:
                stack.envoy.stop()
            for process in reversed(stack.processes):
                await asyncio.to_thread(_stop, process)


@contextlib.asynccontextmanager
async def through_envoy(stack: Served) -> AsyncIterator[Send]:
    """`send(n)`: n gRPC calls through Envoy's listener (authority `web`), 4 at a time."""
    address, options = f"127.0.0.1:{stack.listener_port}", [("grpc.default_authority", SERVICE)]
    async with grpc.aio.insecure_channel(address, options) as channel:
        who = channel.unary_unary(
            WHO_METHOD,
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )

        async def one() -> str:
            reply = await who(wrappers_pb2.StringValue(), timeout=30, wait_for_ready=True)
            return str(reply.value)

        async def send(n: int) -> Counter[str]:
            answered: Counter[str] = Counter()
            for start in range(0, n, 4):
                answered.update(await asyncio.gather(*(one() for _ in range(min(4, n - start)))))
            return answered

        yield send


def shares(answered: Counter[str], names: list[str]) -> list[float]:
    """Each backend's share of the answers, in `names` order."""
    total = sum(answered.values())
    assert set(answered) <= set(names), answered
    return [answered[name] / total for name in names]


def within(seen: list[float], wanted: list[float], bound: float) -> bool:
    """Every share within `bound` of the wanted one."""
    return all(abs(s - w) <= bound for s, w in zip(seen, wanted, strict=True))


@dataclass(frozen=True)
class Settled:
    """Windows of calls until the shares settled: every window's shares, the seconds from
    the start to the end of the first window within the bound, the window after it."""

    windows: list[list[float]]
    seconds: float
    after: list[float]


async def settle(
    send: Send, names: list[str], wanted: list[float], bound: float, *, window: int,
    max_windows: int,
) -> Settled:  # fmt: skip
    """Send windows of `window` calls until one's shares are within `bound` of `wanted`
    (at most `max_windows`); then one more window, which must stay there (checked by the
    caller). A count of windows, never a time, ends the loop."""
    started = time.monotonic()
    seen: list[list[float]] = []
    for _ in range(max_windows):
        seen.append(shares(await send(window), names))
        if within(seen[-1], wanted, bound):
            took = time.monotonic() - started
            return Settled(seen, took, shares(await send(window), names))
    rounded = [[round(s, 3) for s in w] for w in seen]
    raise AssertionError(f"shares never within {bound} of {wanted}: {rounded}")
