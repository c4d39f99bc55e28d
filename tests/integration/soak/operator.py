"""What an operator runs and watches, as processes: `xdscp` commands, request loops through
Envoy and proxyless gRPC clients, an `/api/events` listener and a poller of every admin route.

Every observer records what it saw (answers, failures, statuses, events) and never decides
by time: the soak test reads the records once its schedule has run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.protobuf import wrappers_pb2

from tests.harness.cli import Cli
from tests.harness.grpc_clients import GrpcClient
from xdscp.demo.backend import WHO_METHOD

BACKEND_LINE = re.compile(r"^backend (\S+): http \S+:(\d+) grpc \S+:(\d+)$")
PACE_S = 0.25  # between two requests of one loop: a few per second in all, CPU stays low
POLL_PACE_S = 2.0
REQUESTS_PER_CONNECTION = 10  # between two rounds of admin GETs


def xdscp_json(*args: str) -> dict[str, Any]:
    """The JSON a short `xdscp` command prints (a bootstrap), run as its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "xdscp", *args], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def xdscp_run(*args: str) -> subprocess.CompletedProcess[str]:
    """A short `xdscp` command (status, nacks, policy set, ...) to its end."""
    return subprocess.run(
        [sys.executable, "-m", "xdscp", *args], capture_output=True, text=True, timeout=120,
        check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class BackendProc:
    """`xdscp backend --name NAME` on free ports, its ports read from its first line."""

    name: str
    cli: Cli
    http_port: int
    grpc_port: int

    @classmethod
    def start(cls, name: str) -> BackendProc:
        cli = Cli("backend", "--name", name)
        line = cli.wait_line(cli.stdout, lambda text: BACKEND_LINE.match(text) is not None)
        match = BACKEND_LINE.match(line)
        assert match is not None
        return cls(name, cli, int(match.group(2)), int(match.group(3)))


@dataclass
class Loop:
    """Requests sent one at a time, paced, until stopped: answers by backend, failures."""

    label: str
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + len(self.failures)

    async def through_envoy(self, listener_port: int) -> None:
        """Through the Envoys' listener, a new connection every REQUESTS_PER_CONNECTION
        requests: every Envoy binds the listener (reuse_port) and the kernel gives each new
        connection to one of them, so over the run's ~100 connections each gets some. The
        channel has its own subchannel pool: grpc shares one subchannel (one TCP connection)
        between channels to the same target otherwise, and the kernel would give the whole
        run to whichever Envoy took that one connection."""
        options = [("grpc.default_authority", "web"), ("grpc.use_local_subchannel_pool", 1)]
        while not self.stop.is_set():
            address = f"127.0.0.1:{listener_port}"
            async with grpc.aio.insecure_channel(address, options) as channel:
                who = channel.unary_unary(
                    WHO_METHOD,
                    request_serializer=wrappers_pb2.StringValue.SerializeToString,
                    response_deserializer=wrappers_pb2.StringValue.FromString,
                )
                for _ in range(REQUESTS_PER_CONNECTION):
                    if self.stop.is_set():
                        break
                    await self._ask(who)

    async def _ask(self, who: Any) -> None:
        try:
            self.answers[(await who(wrappers_pb2.StringValue(), timeout=10)).value] += 1
        except grpc.aio.AioRpcError as exc:
            self.failures.append(f"{self._at()} {exc.code().name}: {exc.details()}")
        await self._pace()

    async def through_client(self, client: GrpcClient) -> None:
        while not self.stop.is_set():
            result = await client.call(n=2, concurrency=1)
            self.answers.update(result["counts"])
            self.failures.extend(f"{self._at()} {error}" for error in result["errors"])
            await self._pace()

    def _at(self) -> str:
        return f"at {time.monotonic():.1f}:"

    async def _pace(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), PACE_S)

    def report(self) -> str:
        counts = dict(self.answers)
        return f"{self.label}: {self.total} requests, {len(self.failures)} failed, {counts}"


@dataclass
class EventStream:
    """One `/api/events` connection held for the whole run: every event's name and whether
    its data parsed as JSON; `ended` says why the stream stopped, if it did."""

    url: str
    events: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    ended: str | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.url) as response,
            ):
                if response.status != 200:
                    self.ended = f"status {response.status}"
                    return
                self.connected.set()
                await self._read(response)
            self.ended = "the server ended the stream"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.ended = f"{type(exc).__name__}: {exc}"

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        name = "message"
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                try:
                    json.loads(line.partition(":")[2])
                except ValueError:
                    self.bad.append(f"{name}: {line[:200]}")
                self.events[name] += 1
                name = "message"


@dataclass
class AdminPoller:
    """GETs of every admin route (the list `/api` gives, with parameters where a route needs
    them) and `/metrics`, round after round; every status seen per route, every 5xx."""

    base: str
    services: list[str]
    nodes: list[str]
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    rounds: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def paths(self, routes: list[str]) -> list[str]:
        """The URLs one round asks for."""
        paths: list[str] = []
        for route in routes:
            if route == "/api/events":
                continue  # held open by EventStream
            if route == "/static/":
                paths += ["/static/app.js"]
            elif route == "/api/predict":
                for name in self.services:
                    paths += [f"{route}?service={name}", f"{route}?service={name}&client=grpc"]
            elif route in {"/debug/config_dump", "/debug/nacks"}:
                paths += [route, *(f"{route}?node={n}" for n in self.nodes)]
            else:
                paths.append(route)
        return paths

    def _get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            if error.code >= 500:
                self.server_errors.append(f"{path}: {error.code} {body[:300]}")
            return int(error.code)

    def one_round(self) -> None:
        with urllib.request.urlopen(self.base + "/api", timeout=30) as response:
            routes = json.loads(response.read())["routes"]
        for path in self.paths(routes):
            self.statuses.setdefault(path.partition("?")[0] if "predict" not in path else path,
                                     Counter())[self._get(path)] += 1  # fmt: skip
        self.rounds += 1

    async def run(self) -> None:
        while not self.stop.is_set():
            await asyncio.to_thread(self.one_round)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), POLL_PACE_S)


def rss_kib(pid: int) -> int:
    """The process's resident set (VmRSS, KiB) from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
