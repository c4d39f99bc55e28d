"""HA across replicas, every part real: one etcd, two `xdscp serve` replicas over it (A, then
B), and an Envoy, a grpcio and a grpc-go client, each given the bootstrap `xdscp bootstrap`
prints for both replicas (A first), all sending requests back to back to service `web` (b0, b1).
B starts once every client is on A (Envoy picks a replica at random: its fleet spreads).

A is killed (SIGKILL). Then:
- Envoy (one xDS cluster, an endpoint per replica) opens its next ADS stream on B.
- gRPC clients follow gRFC A71: a channel whose resources are all cached keeps them and goes on
  retrying A (its `web` stream never moves); a new channel (`xds:///api`: gRPC runs one xDS
  client per target) finds A unreachable and falls back to B at once.
- b2 registered for `web` and `api`: Envoy and the new `api` channels get it through B (the
  fallback streams are live); the `web` channels do not, while A is down.
- A restarted on its port: the gRPC clients' streams all go back to it, closing those to B
  (A71), and the `web` channels get b2; Envoy stays where it is.

No request of any loop fails, throughout. Printed: each client's time from the kill to its
stream on B (in sync there; for gRPC, its new channel's), the time to go back to A, and each
loop's requests and failures.

The second test gives gRPC one xDS server, a DNS name with both replicas' addresses: a running
channel then reconnects to B by itself and keeps getting changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2

from tests.fixtures.dns import DnsTestServer
from tests.fixtures.etcd import EtcdServer
from tests.harness.grpc_clients import ClientProcesses, GrpcClient
from tests.harness.plane import running_backends
from tests.harness.serve import LogEvents, Serve, get_json
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap, grpc_bootstrap
from xdscp.demo.backend import WHO_METHOD, Backend, BackendConfig
from xdscp.etcd import EtcdClient, EtcdConfig
from xdscp.model import BalancingPolicy, UpstreamProtocol
from xdscp.procs.envoy import EnvoyProcess
from xdscp.registry import build_registration, register
from xdscp.registry.registration import set_policy
from xdscp.testing import free_port, wait_for

pytestmark = [pytest.mark.grpc, pytest.mark.etcd, pytest.mark.slow]
HTTP2 = BalancingPolicy(upstream_protocol=UpstreamProtocol.HTTP2)
NEW_TARGET = "xds:///api"
FALLBACK_S = 60.0  # deadline to reach B; grpc-go retries A with backoff (1 s, x1.6, <= 120 s)
REVERT_S = 150.0  # deadline to go back to A: the gRPC clients' retry backoff caps at 120 s


class Load:
    """Requests sent back to back until stopped: answers by backend, failures; a client's loop
    also runs the probes queued with `probe` between its batches."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.answers: Counter[str] = Counter()
        self.failures: list[str] = []
        self.stop = asyncio.Event()
        self._probes: list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = []

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
                except grpc.aio.AioRpcError as error:
                    self.failures.append(f"{error.code().name}: {error.details()}")

    async def through_client(self, client: GrpcClient) -> None:
        while not self.stop.is_set():
            if self._probes:
                command, answer = self._probes.pop(0)
                answer.set_result(await client.call(within=FALLBACK_S + 10, **command))
                continue
            result = await client.call(n=20, concurrency=2)
            self.answers.update(result["counts"])
            self.failures.extend(result["errors"])

    async def probe(self, **command: Any) -> dict[str, Any]:
        """Run `command` in this client's loop, between two batches; its result."""
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._probes.append((command, answer))
        return await answer

    def total(self) -> int:
        return sum(self.answers.values()) + len(self.failures)


@dataclass
class Replica:
    """One `xdscp serve` and its log, drained as it comes."""

    serve: Serve
    log: LogEvents

    @classmethod
    def start(
        cls,
        etcd: EtcdServer,
        listener: int,
        xds: int | None = None,
        *,
        started: list[Replica],
        host: str = "127.0.0.1",
    ) -> Replica:
        """A replica serving `listener` to Envoys (xDS on `host`, port `xds` if given), added
        to `started`."""
        serve = Serve(etcd.url, xds=xds, listener=listener, xds_host=host)
        assert serve.process.stderr is not None
        started.append(replica := cls(serve, LogEvents(serve.process.stderr)))
        return replica

    async def streams(self) -> dict[tuple[str, str], bool]:
        """Every stream on this replica: (node id, the listeners it watches: `web`, `api`, or
        `*` for Envoy) -> whether it ACKed every version sent. A gRPC process has one xDS
        client, so one stream, per channel target."""
        _, nodes = await asyncio.to_thread(get_json, self.serve.base + "/debug/nodes")
        found = {}
        for entry in nodes or []:
            types = entry["types"]
            watched = types.get("Listener", {}).get("subscribed", [])
            key = "*" if watched == "*" else ",".join(sorted(watched))
            found[entry["node"], key] = bool(types) and all(t["in_sync"] for t in types.values())
        return found

    async def until_on(self, node: str, watching: str, limit: float) -> float:
        """Wait until the stream of `node` watching `watching` is in sync here; the monotonic
        time it was seen so."""

        async def there() -> bool:
            return (await self.streams()).get((node, watching), False)

        what = f"{node} ({watching}) in sync on {self.serve.xds}"
        await wait_for(there, limit, interval=0.02, retry_on=(OSError,), what=what)
        return time.monotonic()


@dataclass
class Stack:
    etcd: EtcdClient
    a: Replica
    b: Replica  # A until B has started
    listener: int
    loads: dict[str, Load]
    started: list[Replica]  # every replica started (killed on leaving)
    clients: dict[str, GrpcClient] = field(default_factory=dict)
    spare: Backend | None = None  # b2, registered during the test


async def _envoy(servers: tuple[XdsServer, ...], tmp: Path) -> EnvoyProcess:
    options = EnvoyBootstrapOptions(node_id="envoy", servers=servers, admin_port=0)
    envoy = EnvoyProcess(envoy_bootstrap(options), tmp / "envoy")
    await asyncio.to_thread(envoy.start)
    return envoy


@contextlib.asynccontextmanager
async def ha_stack(etcd: EtcdServer, tmp: Path, go_binary: str) -> AsyncIterator[Stack]:
    """Everything running, every client on A in sync and each loop answered by b0 and b1."""
    configs = [BackendConfig(f"b{i}", http_port=-1) for i in range(3)]
    processes = ClientProcesses(lambda: go_binary)
    async with (
        running_backends(configs) as backends,
        EtcdClient(EtcdConfig(endpoints=(etcd.url,))) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        for service, backend in (("web", backends[0]), ("web", backends[1]), ("api", backends[0])):
            await set_policy(client, service, HTTP2)
            await stack.enter_async_context(register(client, _registration(service, backend)))
        listener = free_port()
        started: list[Replica] = []
        stack.callback(lambda: [replica.serve.kill() for replica in started])
        a = await asyncio.to_thread(lambda: Replica.start(etcd, listener, started=started))
        b_port = free_port()  # B starts once every client is on A
        servers = (XdsServer("127.0.0.1", a.serve.xds), XdsServer("127.0.0.1", b_port))
        envoy = await _envoy(servers, tmp)
        stack.callback(envoy.stop)
        stack.push_async_callback(processes.stop)
        loads = {label: Load(label) for label in ("envoy", "grpcio", "grpc-go")}
        running = Stack(client, a, a, listener, loads, started)
        for kind, label in (("python", "grpcio"), ("go", "grpc-go")):
            bootstrap = grpc_bootstrap(label, servers)
            running.clients[label] = await processes.start(kind, bootstrap)
        tasks = [asyncio.create_task(running.loads["envoy"].through_envoy(listener))]
        tasks += [
            asyncio.create_task(running.loads[label].through_client(c))
            for label, c in running.clients.items()
        ]

        async def stop_loads() -> None:
            for load in running.loads.values():
                load.stop.set()
            await asyncio.gather(*tasks)

        stack.push_async_callback(stop_loads)
        await _answered(running, "b0", "b1")
        await wait_for(lambda: _all_on(a, loads), 30, what="every client on A")
        running.b = await asyncio.to_thread(
            lambda: Replica.start(etcd, listener, b_port, started=started)
        )
        assert await running.b.streams() == {}
        running.spare = backends[2]
        yield running


async def _all_on(replica: Replica, loads: dict[str, Load]) -> bool:
    streams = await replica.streams()
    wanted = {("envoy", "*")} | {(label, "web") for label in loads if label != "envoy"}
    return set(streams) == wanted and all(streams.values())


def _registration(service: str, backend: Backend) -> Any:
    return build_registration(service, "127.0.0.1", backend.grpc_port)


async def _answered(
    stack: Stack, *names: str, loads: tuple[str, ...] = (), limit: float = 60.0
) -> None:
    """Wait until every loop (of `loads`, if given) got one more answer from each of `names`."""
    targets = {
        label: {name: load.answers[name] + 1 for name in names}
        for label, load in stack.loads.items()
        if label in (loads or stack.loads)
    }

    def done() -> bool:
        return all(
            stack.loads[label].answers[name] >= count
            for label, wanted in targets.items()
            for name, count in wanted.items()
        )

    try:
        await wait_for(done, limit, what=f"answers from {names}")
    except AssertionError:
        nodes = await asyncio.to_thread(get_json, stack.b.serve.base + "/debug/nodes")
        seen = {label: dict(load.answers) for label, load in stack.loads.items()}
        raise AssertionError(f"answers from {names} by now: {seen}; B's nodes: {nodes}") from None


async def _fallback(stack: Stack) -> dict[str, dict[str, float]]:
    """Kill A. Envoy's stream moves to B; the gRPC clients' `web` streams stay on A (all they
    watch is cached) and a new channel's stream, to `api`, goes to B. Seconds from the kill
    (and from the new channel) to each stream in sync on B."""
    killed = time.monotonic()
    await asyncio.to_thread(stack.a.serve.kill)
    figures: dict[str, dict[str, float]] = {}

    async def envoy() -> None:
        figures["envoy"] = {"kill": await stack.b.until_on("envoy", "*", FALLBACK_S) - killed}

    async def fall_back(label: str) -> None:
        asked = time.monotonic()
        probe = stack.loads[label].probe(target=NEW_TARGET, n=1, timeout=FALLBACK_S)
        on_b, result = await asyncio.gather(stack.b.until_on(label, "api", FALLBACK_S), probe)
        assert not result["errors"], (label, result)
        figures[label] = {"kill": on_b - killed, "new_channel": on_b - asked}

    await asyncio.gather(envoy(), *(fall_back(label) for label in stack.clients))
    # gRFC A71: a stream whose resources are all cached does not fall back (its channel
    # keeps them and retries A), whatever the delay.
    assert {(label, "web") for label in stack.clients}.isdisjoint(await stack.b.streams())
    return figures


async def _new_backend_on_api(stack: Stack) -> None:
    """Each gRPC client's `api` channel (its stream on B) is answered by b2."""
    assert stack.spare is not None

    async def reached(label: str) -> None:
        async def answered() -> bool:
            result = await stack.loads[label].probe(target=NEW_TARGET, n=10)
            assert not result["errors"], (label, result)
            return stack.spare is not None and stack.spare.config.name in result["counts"]

        await wait_for(answered, 30, interval=0, what=f"b2 answering {label} on api")

    await asyncio.gather(*(reached(label) for label in stack.clients))


async def _revert(stack: Stack, etcd: EtcdServer) -> dict[str, dict[str, float]]:
    """Restart A on its port; seconds until each gRPC client's `web` stream is back on it, and
    its `api` stream too (A71: back to the primary once it answers, closing the stream to B)."""
    started = time.monotonic()
    port = stack.a.serve.xds
    stack.a = await asyncio.to_thread(
        lambda: Replica.start(etcd, stack.listener, port, started=stack.started)
    )
    figures: dict[str, dict[str, float]] = {}

    async def back(label: str) -> None:
        web, api = await asyncio.gather(
            stack.a.until_on(label, "web", REVERT_S), stack.a.until_on(label, "api", REVERT_S)
        )
        figures[label] = {"web": web - started, "api": api - started}

    async def left_b() -> bool:
        return {(label, "api") for label in stack.clients}.isdisjoint(await stack.b.streams())

    await asyncio.gather(*(back(label) for label in stack.clients))
    await wait_for(left_b, 30, what="the gRPC clients closing their streams to B")
    return figures


@pytest.mark.envoy
async def test_replica_killed_under_load_fails_no_request(
    etcd_server: EtcdServer, tmp_path: Path, go_client_binary: str
) -> None:
    """A killed under load, then b2 registered for `web` and `api`, then A restarted: Envoy
    gets b2 through B; the gRPC clients' new `api` channels get it through B, their `web`
    channels once A is back; no request fails."""
    async with ha_stack(etcd_server, tmp_path, go_client_binary) as stack:
        fallen = await _fallback(stack)
        assert stack.spare is not None
        async with contextlib.AsyncExitStack() as registered:
            for service in ("web", "api"):
                registration = _registration(service, stack.spare)
                await registered.enter_async_context(register(stack.etcd, registration))
            registered_at = time.monotonic()
            await _answered(stack, "b2", loads=("envoy",))
            to_envoy = time.monotonic() - registered_at
            await _new_backend_on_api(stack)
            to_api = time.monotonic() - registered_at
            stale = {label: stack.loads[label].answers["b2"] for label in stack.clients}
            reverted = await _revert(stack, etcd_server)
            await _answered(stack, "b0", "b1", "b2")
        envoy_on = "A" if ("envoy", "*") in await stack.a.streams() else "B"
    for label, load in stack.loads.items():
        print(_report(label, load, fallen[label], reverted.get(label), envoy_on))
    print(f"b2 registered with A down: answering through Envoy after {to_envoy:.2f} s, on both"
          f" gRPC clients' new channels after {to_api:.2f} s")  # fmt: skip
    assert stale == dict.fromkeys(stack.clients, 0)  # no `web` update while A was down
    assert {label: load.failures[:3] for label, load in stack.loads.items()} == {
        label: [] for label in stack.loads
    }


def _report(
    label: str,
    load: Load,
    fallen: dict[str, float],
    reverted: dict[str, float] | None,
    envoy_on: str,
) -> str:
    on_b = ", ".join(f"{seconds:.2f} s after the {event}" for event, seconds in fallen.items())
    if reverted is None:
        then = f"on {envoy_on} after A's restart"
    else:
        then = "back on A " + ", ".join(f"{k} {v:.2f} s" for k, v in reverted.items())
        then += " after its restart"
    return f"{label}: on B {on_b}; {then}; {load.total()} requests, {len(load.failures)} failed"


async def test_one_name_for_both_replicas_moves_running_grpc_channels(
    etcd_server: EtcdServer, dns_server: DnsTestServer, tmp_path: Path, go_client_binary: str
) -> None:
    """The replicas behind one DNS name (A on 127.0.0.1, B on 127.0.0.2, one port), given to
    gRPC as its one xDS server: A killed under load, each client's running `web` channel
    re-resolves and reconnects to B and gets b2 registered then; no request fails."""
    dns_server.add("xdscp.test.", "A", "127.0.0.1")
    dns_server.add("xdscp.test.", "A", "127.0.0.2")
    configs = [BackendConfig(f"b{i}", http_port=-1) for i in range(3)]
    processes = ClientProcesses(lambda: go_client_binary)
    started: list[Replica] = []
    loads = {label: Load(label) for label in ("grpcio", "grpc-go")}
    async with (
        running_backends(configs) as backends,
        EtcdClient(EtcdConfig(endpoints=(etcd_server.url,))) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        for backend in backends[:2]:
            await stack.enter_async_context(register(client, _registration("web", backend)))
        listener, port = free_port(), free_port()
        stack.callback(lambda: [replica.serve.kill() for replica in started])
        a = await asyncio.to_thread(
            lambda: Replica.start(etcd_server, listener, port, started=started)
        )
        stack.push_async_callback(processes.stop)
        tasks = []
        for kind, label in (("python", "grpcio"), ("go", "grpc-go")):
            bootstrap = grpc_bootstrap(label, (XdsServer("xdscp.test", port),))
            bootstrap["xds_servers"][0]["server_uri"] = (
                f"dns://127.0.0.1:{dns_server.port}/xdscp.test:{port}"  # the test's DNS server
            )
            running = await processes.start(kind, bootstrap)
            tasks.append(asyncio.create_task(loads[label].through_client(running)))

        async def stop_loads() -> None:
            for load in loads.values():
                load.stop.set()
            await asyncio.gather(*tasks)

        stack.push_async_callback(stop_loads)
        await wait_for(lambda: _streams_on(a, loads), 30, what="both clients on A")
        b = await asyncio.to_thread(
            lambda: Replica.start(etcd_server, listener, port, started=started, host="127.0.0.2")
        )  # B starts once both clients are on A
        killed = time.monotonic()
        await asyncio.to_thread(a.serve.kill)
        on_b = await asyncio.gather(*(b.until_on(label, "web", FALLBACK_S) for label in loads))
        await stack.enter_async_context(register(client, _registration("web", backends[2])))
        reached = time.monotonic()
        await wait_for(lambda: all(load.answers["b2"] for load in loads.values()), 30)
        reached = time.monotonic() - reached
    for (label, load), seen in zip(loads.items(), on_b, strict=True):
        print(f"{label} (one name): on B {seen - killed:.2f} s after the kill; b2 answered"
              f" {reached:.2f} s after its registration; {load.total()} requests,"
              f" {len(load.failures)} failed")  # fmt: skip
    assert {label: load.failures[:3] for label, load in loads.items()} == {
        label: [] for label in loads
    }


async def _streams_on(replica: Replica, loads: dict[str, Load]) -> bool:
    streams = await replica.streams()
    return all(streams.get((label, "web"), False) for label in loads)
