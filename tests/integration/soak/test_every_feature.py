"""Every feature at once, for minutes, as an operator runs it: each part its own process.

etcd; dnsmasq; one `xdscp serve` fed by etcd, a `--static` file and a DNS source, with its
own health checks on; four `xdscp backend`s, three registered by `xdscp register` (zones and
weights) into a service whose policy, set by `xdscp policy set` flags, has every part; the
static and DNS services carry `covering_policies()` (every field of the model set between
them). Two Envoys (state of the world and delta, bootstrapped by `xdscp bootstrap envoy`),
a grpc-go and a grpcio client (`xdscp bootstrap grpc`) send a few paced requests a second;
an `/api/events` stream stays open; every admin route, /metrics, `xdscp status` and `xdscp
nacks` are read again and again. Meanwhile an operator's mistakes and chores: a backend
registered twice (refused; the first keeps its key and its traffic), the static file edited
and reloaded by SIGHUP, a backend drained out by `xdscp deregister --drain` under traffic.

It lasts 2.5 times the longest keepalive / timeout window (as the idle soak, ~3 minutes;
`XDSCP_SOAK_SECONDS` makes it longer). Issue: short single-feature checks missed streams reset
every 80 s, a dashboard 500ing on a resilience policy, a duplicate registrar deleting a live
backend; this looks for that class.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.dnsmasq import DnsmasqServer
from tests.fixtures.etcd import EtcdServer
from tests.harness.cli import Cli
from tests.harness.grpc_clients import ClientProcesses
from tests.harness.policies import covering_policies
from tests.harness.serve import get_json
from tests.harness.soak import SOAK_S
from tests.integration.soak.operator import (
    AdminPoller,
    BackendProc,
    EventStream,
    Loop,
    rss_kib,
    xdscp_json,
    xdscp_run,
)
from xdscp.model import BalancingPolicy
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port, wait_for, wait_until

pytestmark = [
    pytest.mark.etcd, pytest.mark.envoy, pytest.mark.grpc, pytest.mark.go, pytest.mark.slow,
    pytest.mark.requires("dnsmasq"), pytest.mark.timeout(SOAK_S + 900),
]  # fmt: skip
# serve's resident set may grow this much from the end of the warm-up to the end. Measured:
# +4 to +52 KiB of ~77 MiB (four runs, one beside a busy loop). The run makes ~5000 requests
# and ~2500 admin GETs after the warm-up: a leak of ~5 KiB per request or GET crosses it.
RSS_GROWTH_LIMIT_KIB = 24 * 1024
WEB = {"b0": ("z1", 3), "b1": ("z2", 1), "b2": ("z1", 2)}  # backend → (zone, weight) in web
WEB_POLICY = [
    "--replace", "--lb", "weighted_round_robin", "--upstream-protocol", "http2",
    "--locality-weighted", "--overprovisioning-factor", "150", "--panic-threshold", "40",
    "--outlier-detection", json.dumps({"success_rate": {"minimum_hosts": 3}}),
    "--consecutive-5xx", "5", "--consecutive-gateway-failure", "5", "--failure-percentage",
    "90", "--ejection-interval", "5s", "--base-ejection-time", "10s",
    "--max-ejection-percent", "34", "--always-eject-one-host",
    "--health-check", "grpc:xdscp.demo.Echo", "--health-interval", "1s", "--health-timeout",
    "2s", "--healthy-threshold", "1", "--unhealthy-threshold", "3",
    "--health-by-control-plane", "--slow-start-window", "3s", "--slow-start-aggression",
    "1.5", "--slow-start-min-weight-percent", "20", "--max-connections", "1000",
    "--max-pending-requests", "1000", "--max-requests", "1000", "--max-retries", "10",
    "--retry-on", "5xx,unavailable,reset,connect-failure", "--num-retries", "2",
    "--per-try-timeout", "5s", "--retry-backoff-base", "25ms", "--retry-backoff-max", "250ms",
    "--timeout", "15s",
]  # fmt: skip
NODES = ("soak-envoy-sotw", "soak-envoy-delta", "soak-go", "soak-python")
# fraction of the soak; the last quarter (after the warm-up sample at 0.2) is quiet for 1.9 x
# the keepalive window: a server policing Envoy's 15 s pings resets its stream there (caught
# with grpc's default ping policing put back; changes that send data to a stream hide it)
CHORE_AT = {"duplicate": 0.05, "reload": 0.12, "drain": 0.25}
XDS_CONNECTIONS = "cluster.xdscp_xds.upstream_cx_total"  # Envoy's connections to xdscp, ever
UPSTREAM_RQ = "cluster.web.upstream_rq_total"
DOWNSTREAM_CX = "http.xdscp.downstream_cx_total"  # connections the loops opened to this Envoy
CLI_EVERY_S = 30.0  # `xdscp status` / `xdscp nacks`


def _static(b3: int, *, reloaded: bool) -> str:
    """The `--static` file: one service per covering policy on b3 (after the reload, one
    more service)."""
    services: dict[str, Any] = {
        f"cover-{i}": {"policy": p.to_mapping(), "endpoints": [{"address": "127.0.0.1",
                                                              "port": b3}]}
        for i, p in enumerate(covering_policies())
    }  # fmt: skip
    if reloaded:
        services["reloaded"] = {"endpoints": [{"address": "127.0.0.1", "port": b3, "weight": 2}]}
    return yaml.safe_dump({"services": services})


def _carrying_traffic(policy: BalancingPolicy) -> BalancingPolicy:
    """`policy` with a route timeout and per-try timeout a loaded 2-core machine never
    reaches (the covering ones are 1.5 s: other tests' load stalled calls past that): still
    every field set, off its default."""
    assert policy.retries is not None
    retries = dataclasses.replace(policy.retries, per_try_timeout=10.0)
    return dataclasses.replace(policy, timeout=30.0, retries=retries)


def _dns_config(dns: DnsmasqServer, b3: int) -> str:
    """The DNS source: service dnsweb (the grpcio client's) at dnsweb.test, on b3."""
    policy = _carrying_traffic(covering_policies()[-1]).to_mapping()
    return yaml.safe_dump({"dns": {
        "resolver": {"nameservers": ["127.0.0.1"], "port": dns.port, "timeout": 2.0},
        "refresh": {"min_interval": 1, "max_interval": 5},
        "services": [{"service": "dnsweb", "dns_name": "dnsweb.test", "record_type": "A",
                      "port": b3, "policy": policy}],
    }})  # fmt: skip


def _replace_keeping_mtime(path: Path, text: str) -> None:
    """Swap `path`'s content in one rename, keeping its modification time: serve's file poll
    cannot notice, so only SIGHUP can make it re-read the file."""
    before = path.stat()
    temporary = path.with_suffix(".new")
    temporary.write_text(text)
    os.utime(temporary, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(temporary, path)


class Stack:
    """The running processes, the observers and what the chores found."""

    def __init__(self, tmp: Path, etcd: EtcdServer) -> None:
        self.tmp, self.etcd = tmp, etcd
        self.xds, self.admin, self.listener = free_port(), free_port(), free_port()
        self.backends: dict[str, BackendProc] = {}
        self.registrars: dict[str, Cli] = {}
        self.envoys: list[EnvoyProcess] = []
        self.loops: list[Loop] = []
        self.serve: Cli | None = None
        self.static = tmp / "services.yaml"
        self.findings: dict[str, Any] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.admin}"

    def get(self, path: str) -> Any:
        status, body = get_json(self.base + path)
        assert status == 200, (path, status, body)
        return body

    def web_endpoints(self) -> dict[int, dict[str, Any]]:
        """The endpoints of service web in /api/services, by port."""
        services = {s["name"]: s for s in self.get("/api/services")["services"]}
        endpoints = services.get("web", {}).get("endpoints", [])
        return {e["port"]: e for e in endpoints}

    def register(self, name: str) -> None:
        zone, weight = WEB[name]
        cli = Cli("register", "web", f"127.0.0.1:{self.backends[name].grpc_port}", "--zone",
                  zone, "--weight", str(weight), "--ttl", "5", "--etcd", self.etcd.url)  # fmt: skip
        self.registrars[name] = cli
        cli.wait_line(cli.stdout, lambda line: line.startswith("registered "))

    def start_serve(self, dns: DnsmasqServer) -> Cli:
        b3 = self.backends["b3"].grpc_port
        self.static.write_text(_static(b3, reloaded=False))
        dns_file = self.tmp / "dns.yaml"
        dns_file.write_text(_dns_config(dns, b3))
        serve = Cli("serve", "--etcd", self.etcd.url, "--static", str(self.static),
                    "--dns-config", str(dns_file), "--xds", f"127.0.0.1:{self.xds}",
                    "--admin", f"127.0.0.1:{self.admin}", "--listener",
                    f"127.0.0.1:{self.listener}", "--health-lease-ttl", "3")  # fmt: skip
        self.serve = serve

        def ready() -> bool:
            assert serve.process.poll() is None, serve.output[-3000:]
            try:
                return get_json(self.base + "/readyz")[0] == 200
            except OSError:
                return False

        wait_until(ready, 60)
        return serve

    def start_envoy(self, node: str, *flags: str) -> EnvoyProcess:
        bootstrap = xdscp_json("bootstrap", "envoy", "--node-id", node, "--xds",
                               f"127.0.0.1:{self.xds}", "--admin-port", "0", *flags)  # fmt: skip
        envoy = EnvoyProcess(bootstrap, self.tmp / node)
        self.envoys.append(envoy)
        envoy.start()
        return envoy

    def stop_registrars(self) -> None:
        for registrar in self.registrars.values():
            registrar.__exit__()

    def stop_envoys(self) -> None:
        for envoy in self.envoys:
            envoy.stop()

    def synced(self) -> bool:
        """Every node connected once, every type it was sent ACKed, no NACK."""
        nodes = {n["node"]: n for n in self.get("/debug/nodes")}
        if set(nodes) != set(NODES):
            return False
        return all(
            not n.get("last_nack") and all(t["in_sync"] for t in n["types"].values())
            for n in nodes.values()
        )


async def _to_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


async def _start(stack: Stack, exits: AsyncExitStack, dns: DnsmasqServer, go: str) -> None:
    """Backends, serve, registrations, the policy, the Envoys and the gRPC clients."""
    dns.set_hosts("127.0.0.1 dnsweb.test")
    for name in ("b0", "b1", "b2", "b3"):
        stack.backends[name] = await _to_thread(BackendProc.start, name)
        exits.callback(stack.backends[name].cli.__exit__)
    serve = await _to_thread(stack.start_serve, dns)
    exits.callback(serve.__exit__)
    exits.callback(stack.stop_registrars)
    for name in WEB:
        await _to_thread(stack.register, name)
    policy = await _to_thread(xdscp_run, "policy", "set", "web", *WEB_POLICY, "--etcd",
                              stack.etcd.url)  # fmt: skip
    assert policy.returncode == 0, policy.stderr
    exits.callback(stack.stop_envoys)
    await _to_thread(stack.start_envoy, "soak-envoy-sotw", "--sotw")
    await _to_thread(stack.start_envoy, "soak-envoy-delta", "--delta")
    clients = ClientProcesses(lambda: go)
    exits.push_async_callback(clients.stop)
    xds = f"127.0.0.1:{stack.xds}"
    go_bootstrap = ["--node-id", "soak-go", "--xds", xds, "--locality", "/z1"]
    go_client = await clients.start("go", xdscp_json("bootstrap", "grpc", *go_bootstrap))
    python_client = await clients.start(
        "python",
        xdscp_json("bootstrap", "grpc", "--node-id", "soak-python", "--xds", xds),
        service="dnsweb",
    )
    stack.loops = [Loop("envoy-a"), Loop("envoy-b"), Loop("grpc-go"), Loop("grpcio")]
    tasks = [
        asyncio.create_task(stack.loops[0].through_envoy(stack.listener)),
        asyncio.create_task(stack.loops[1].through_envoy(stack.listener)),
        asyncio.create_task(stack.loops[2].through_client(go_client)),
        asyncio.create_task(stack.loops[3].through_client(python_client)),
    ]

    async def stop_loops() -> None:
        for loop in stack.loops:
            loop.stop.set()
        await asyncio.gather(*tasks)

    exits.push_async_callback(stop_loops)


@pytest.fixture
async def stack(
    etcd_server: EtcdServer, dnsmasq_server: DnsmasqServer, go_client_binary: str,
    tmp_path: Path,
) -> AsyncIterator[Stack]:  # fmt: skip
    """Everything running, every node in sync and every loop answered; stopped after."""
    running = Stack(tmp_path, etcd_server)
    async with AsyncExitStack() as exits:
        await _start(running, exits, dnsmasq_server, go_client_binary)
        await _to_thread(wait_until, running.synced, 120)
        await wait_for(lambda: all(sum(loop.answers.values()) >= 5 for loop in running.loops), 120)
        yield running


async def _duplicate(stack: Stack) -> None:
    """b0 registered a second time, with another weight: refused (exit 3, one line); b0's
    registration keeps its zone and weight, its registrar runs on, and b0 still answers."""
    b0 = stack.backends["b0"]
    second = await _to_thread(xdscp_run, "register", "web", f"127.0.0.1:{b0.grpc_port}",
                              "--weight", "7", "--ttl", "5", "--etcd", stack.etcd.url)  # fmt: skip
    stack.findings["duplicate"] = (second.returncode, second.stdout, second.stderr)
    answered = [loop.answers["b0"] for loop in stack.loops[:3]]
    await wait_for(lambda: all(
        loop.answers["b0"] >= n + 5 for loop, n in zip(stack.loops[:3], answered, strict=True)
    ), 120)  # fmt: skip
    stack.findings["b0_after_duplicate"] = stack.web_endpoints().get(b0.grpc_port)
    stack.findings["b0_registrar_running"] = stack.registrars["b0"].process.poll() is None


async def _reload(stack: Stack) -> None:
    """The static file gains a service, its mtime unchanged: SIGHUP alone makes serve read
    it; the service reaches /api/services and both Envoys' clusters."""
    assert stack.serve is not None
    before = len(stack.serve.stderr)
    _replace_keeping_mtime(stack.static, _static(stack.backends["b3"].grpc_port, reloaded=True))
    stack.serve.process.send_signal(signal.SIGHUP)

    def reloaded() -> bool:
        names = {s["name"] for s in stack.get("/api/services")["services"]}
        return (
            "reloaded" in names
            and stack.synced()
            and all("reloaded::" in envoy.admin("/clusters") for envoy in stack.envoys)
        )

    await _to_thread(wait_until, reloaded, 60)
    stack.findings["reload_logged"] = any(
        '"reload_requested"' in line for line in stack.serve.stderr[before:]
    )


async def _drain(stack: Stack) -> None:
    """`xdscp deregister web b2 --drain 4` under traffic: it ends 0, b2 leaves web, its
    registrar says its key was deleted and exits 0; the loops' failures are checked at the end."""
    b2 = stack.backends["b2"]
    failed = [len(loop.failures) for loop in stack.loops]
    done = await _to_thread(xdscp_run, "deregister", "web", f"127.0.0.1:{b2.grpc_port}",
                            "--drain", "4", "--etcd", stack.etcd.url)  # fmt: skip
    await _to_thread(wait_until, lambda: b2.grpc_port not in stack.web_endpoints(), 60)
    registrar = stack.registrars["b2"]
    status = await _to_thread(registrar.ended)
    answered = [loop.answers["b1"] for loop in stack.loops[:3]]
    await wait_for(lambda: all(
        loop.answers["b1"] >= n + 5 for loop, n in zip(stack.loops[:3], answered, strict=True)
    ), 120)  # fmt: skip
    stack.findings["drain"] = {
        "deregister": (done.returncode, done.stdout, done.stderr),
        "registrar": (status, registrar.stdout[-1:]),
        "failed_meanwhile": [len(loop.failures) - n for loop, n in zip(stack.loops, failed,
                                                                        strict=True)],
    }  # fmt: skip


async def _operator_commands(stack: Stack, stop: asyncio.Event) -> None:
    """`xdscp status` and `xdscp nacks` every CLI_EVERY_S: each must end 0."""
    results: list[tuple[str, int, str]] = []
    stack.findings["cli"] = results
    while not stop.is_set():
        for command in ("status", "nacks"):
            done = await _to_thread(xdscp_run, command, "--admin", f"127.0.0.1:{stack.admin}")
            results.append((command, done.returncode, done.stderr[-500:]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CLI_EVERY_S)


def _serve_problems(serve: Cli) -> list[str]:
    """serve's log lines at error level or above, and any traceback."""
    problems = [line for line in serve.stderr if "Traceback" in line]
    for line in serve.stderr:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in {"error", "critical"}:
            problems.append(line)
    return problems


def _events(serve: Cli, name: str) -> list[dict[str, Any]]:
    records = []
    for line in serve.stderr:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == name:
            records.append(record)
    return records


async def _soak(stack: Stack, poller: AdminPoller, events: EventStream) -> dict[str, int]:
    """The schedule: the chores at their fraction of SOAK_S, the observers all along; the
    RSS of serve (KiB) at the start, after the warm-up (a fifth of the soak) and at the end."""
    assert stack.serve is not None
    pid, stop, start = stack.serve.process.pid, asyncio.Event(), time.monotonic()
    rss = {"start": rss_kib(pid)}
    stack.findings["soak"] = (round(start, 1), round(start + SOAK_S, 1))
    observers = [asyncio.create_task(poller.run()), asyncio.create_task(events.run()),
                 asyncio.create_task(_operator_commands(stack, stop))]  # fmt: skip
    await asyncio.wait_for(events.connected.wait(), 60)
    chores = {"duplicate": _duplicate, "reload": _reload, "drain": _drain}
    for name, at in [*sorted(CHORE_AT.items(), key=lambda item: item[1]), ("end", 1.0)]:
        if name != "end" and "warm" not in rss and at > 0.2:
            await asyncio.sleep(max(0.0, start + 0.2 * SOAK_S - time.monotonic()))
            rss["warm"] = rss_kib(pid)
        # pacing, not a condition: the chore waits on its own outcome
        await asyncio.sleep(max(0.0, start + at * SOAK_S - time.monotonic()))
        if name != "end":
            stack.findings.setdefault("chores_at", {})[name] = round(time.monotonic(), 1)
            await chores[name](stack)
    rss["end"] = rss_kib(pid)
    poller.stop.set()
    stop.set()
    await asyncio.gather(observers[0], observers[2])
    observers[1].cancel()
    return rss


def _stat(envoy: EnvoyProcess, name: str) -> int:
    return int(envoy.admin(f"/stats?filter=^{name}$").strip().rpartition(" ")[2])


async def test_every_feature_at_once_for_minutes(stack: Stack) -> None:
    """Run for SOAK_S with everything on, then: no admin route ever 5xx, /readyz always 200,
    the event stream never ended nor sent an unreadable or `failed` event; serve logged no
    error or traceback and no stream close; every client kept its one stream; no request
    failed; the duplicate was refused and b0 kept its zone, weight and traffic; the drain
    ended cleanly under traffic; the reload took effect through SIGHUP; `xdscp status` and
    `nacks` always worked; serve's RSS grew at most RSS_GROWTH_LIMIT_KIB after warm-up."""
    assert stack.serve is not None
    services = [s["name"] for s in stack.get("/api/services")["services"]]
    poller = AdminPoller(stack.base, services, list(NODES))
    events = EventStream(stack.base + "/api/events")
    before = {n["node"]: n for n in stack.get("/debug/nodes")}
    rss = await _soak(stack, poller, events)
    after = {n["node"]: n for n in stack.get("/debug/nodes")}
    for loop in stack.loops:
        print(loop.report())
    print(f"serve RSS KiB {rss}; growth after warm-up {rss['end'] - rss['warm']} KiB;"
          f" {poller.rounds} admin rounds; events {dict(events.events)}")  # fmt: skip
    print(f"findings {stack.findings}")
    opened = [_stat(envoy, DOWNSTREAM_CX) for envoy in stack.envoys]
    # The loops open a connection every REQUESTS_PER_CONNECTION requests (~100 in a run); the
    # kernel gives each to one of the two Envoys binding the listener (reuse_port). Fewer
    # would mean connections were shared, and the split below would be a coin toss.
    assert sum(opened) >= 20, opened
    for envoy in stack.envoys:
        requests = envoy.admin(f"/stats?filter=^{UPSTREAM_RQ}$").strip()
        print(envoy.workdir.name, requests, f"{DOWNSTREAM_CX} {_stat(envoy, DOWNSTREAM_CX)}")
        assert int(requests.rpartition(" ")[2]) > 0, (envoy.workdir.name, requests)
        connections = envoy.admin(f"/stats?filter=^{XDS_CONNECTIONS}$").strip()
        assert connections == f"{XDS_CONNECTIONS}: 1", (envoy.workdir.name, connections)

    assert poller.server_errors == []
    assert poller.rounds >= 10, poller.rounds
    assert set(poller.statuses["/readyz"]) == {200}, poller.statuses["/readyz"]
    assert events.ended is None, events.ended
    assert events.bad == []
    assert "failed" not in events.events
    assert events.events["services"] >= 3, events.events
    assert _serve_problems(stack.serve) == []
    assert _events(stack.serve, "stream_closed") == []
    for node in NODES:
        assert after[node]["connected_since"] == before[node]["connected_since"], node
        assert len([r for r in _events(stack.serve, "stream_opened") if r["node"] == node]) == 1
    assert [loop.failures for loop in stack.loops] == [[], [], [], []]

    code, out, err = stack.findings["duplicate"]
    assert code == 3, (out, err)
    assert next(line for line in err.splitlines() if not line.startswith("{")).startswith(
        "Error: /xdscp/services/web/127.0.0.1:"
    ), err
    b0 = stack.findings["b0_after_duplicate"]
    assert (b0["weight"], b0["locality"]["zone"]) == (3, "z1"), b0
    assert stack.findings["b0_registrar_running"]
    assert stack.registrars["b0"].process.poll() is None

    drain = stack.findings["drain"]
    assert drain["deregister"][0] == 0, drain
    assert drain["registrar"][0] == 0, drain
    assert "was deleted by someone else" in drain["registrar"][1][0], drain
    assert drain["failed_meanwhile"] == [0, 0, 0, 0], drain

    assert stack.findings["reload_logged"]
    assert [c for c in stack.findings["cli"] if c[1] != 0] == []
    assert len(stack.findings["cli"]) >= 4
    assert rss["end"] - rss["warm"] <= RSS_GROWTH_LIMIT_KIB, rss
