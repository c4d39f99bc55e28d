"""The fault suite's moving parts: real `xdscp serve` and `xdscp register` processes, a real
Envoy, a TCP proxy that can cut a process off etcd, a writer, and the convergence check.

Every process is started on loopback with free ports. `Stack.converge` polls until what etcd
holds under the services prefix equals what Envoy holds (`/clusters`), with every running
registration present, and returns the step's figures (events written, mismatches,
registrations lost, time to converge).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.cli import child_env
from tests.integration.etcd.helpers import ROOT, endpoint_json, endpoint_order
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.errors import EtcdError
from xdscp.etcd import EtcdClient
from xdscp.procs import terminate
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port

CONVERGE_S = 30.0  # the bound on every convergence wait
REGISTERED = "reg"  # the service the registrars register in


def _wait(
    what: str, check: Any, within: float, process: subprocess.Popen[bytes], log: Path
) -> None:
    """Poll `check()` until true; fail (with the tail of the process's `log`) if `process`
    exits or `within` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.05)
    status = "running" if process.poll() is None else f"exited with {process.returncode}"
    tail = log.read_text(errors="replace")[-1500:]
    raise AssertionError(f"{what}: not within {within} s (process {status}); {log}:\n{tail}")


class TcpProxy:
    """A loopback TCP proxy to `127.0.0.1:target` (its own thread and event loop).

    `cut()` resets every connection through it and resets new ones as soon as they are
    accepted (the process behind it sees etcd vanish, etcd sees its client vanish);
    `restore()` lets connections through again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connected = True
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    @property
    def url(self) -> str:
        """The proxy's URL as an etcd client URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen on a free port."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.connected:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()  # etcd is down: the client sees a reset, as it would
            return
        self._transports |= {writer.transport, up_writer.transport}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._transports -= {writer.transport, up_writer.transport}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    def _cut(self) -> None:
        self.connected = False
        for transport in list(self._transports):
            transport.abort()

    def cut(self) -> None:
        """Reset every connection, and every new one until `restore`."""

        async def cut() -> None:
            self._cut()

        asyncio.run_coroutine_threadsafe(cut(), self._loop).result(5)

    def restore(self) -> None:
        """Let connections through again."""
        self.connected = True

    def close(self) -> None:
        """Stop listening, reset every connection, stop the thread."""

        async def shutdown() -> None:
            self._cut()
            if self._server is not None:
                self._server.close()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


@dataclass
class Serve:
    """`xdscp serve` on the etcd registry, as users run it (JSON logs to a file)."""

    etcd_urls: tuple[str, ...]
    workdir: Path
    xds_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    listener_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """serve's log (JSON lines)."""
        return self.workdir / "serve.log"

    def start(self) -> None:
        """Start serve and wait until /readyz says 200; on new ports if it exited at once
        (a free port taken meanwhile by another process: it could not bind)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            with self.log_path.open("ab") as out:
                self.process = subprocess.Popen(
                    self._command(), stdout=out, stderr=out, env=child_env()
                )
            try:
                ready = lambda: self.admin("/readyz")[0] == 200  # noqa: E731
                _wait("serve ready", ready, CONVERGE_S, self.process, self.log_path)
            except AssertionError:
                if self.process.poll() is None or attempt == 2:
                    raise
                self.xds_port, self.admin_port = free_port(), free_port()
                self.listener_port = free_port()
            else:
                return

    def _command(self) -> list[str]:
        etcd = [arg for url in self.etcd_urls for arg in ("--etcd", url)]
        return [
            sys.executable, "-m", "xdscp", "--log-format", "json", "serve", *etcd,
            "--xds", f"127.0.0.1:{self.xds_port}", "--admin", f"127.0.0.1:{self.admin_port}",
            "--listener", f"127.0.0.1:{self.listener_port}",
        ]  # fmt: skip

    def admin(self, path: str) -> tuple[int, Any]:
        """GET an admin path: (status, JSON body)."""
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def metric(self, name: str) -> float | None:
        """The value of an unlabelled metric on serve's /metrics (None when absent)."""
        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(f"{name} "):
                    return float(line.split()[1])
        return None

    def pause(self) -> None:
        """SIGSTOP serve."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT serve."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def log_events(self, name: str) -> int:
        """How many log lines serve wrote with event `name`."""
        text = self.log_path.read_text(errors="replace")
        return text.count(f'"event": "{name}"')

    def stop(self) -> None:
        """SIGCONT (a stopped process cannot act on SIGTERM), then terminate."""
        if self.process is not None and self.process.poll() is None:
            self.resume()
        terminate(self.process, grace_s=10)


@dataclass
class Registrar:
    """One `xdscp register reg 127.0.0.1:PORT --ttl TTL` process."""

    etcd_urls: tuple[str, ...]
    workdir: Path
    ttl: int
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The registered address."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The registrar's output (stdout and JSON log lines)."""
        return self.workdir / f"register-{self.port}.log"

    def start(self, *, wait: bool = True) -> None:
        """Start registering; return once it printed `registered` (unless `wait` is False)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        etcd = [arg for url in self.etcd_urls for arg in ("--etcd", url)]
        command = [
            sys.executable, "-m", "xdscp", "--log-format", "json", "register", REGISTERED,
            self.endpoint, "--ttl", str(self.ttl), *etcd,
        ]  # fmt: skip
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=out, env=child_env())
        if wait:
            self.wait_registered()

    def wait_registered(self) -> None:
        """Wait until the process printed `registered KEY` (bounded)."""
        assert self.process is not None
        printed = f"registered {ROOT}{REGISTERED}/{self.endpoint}"
        done = lambda: printed in self.log_path.read_text()  # noqa: E731
        _wait("registered", done, CONVERGE_S, self.process, self.log_path)

    def exit_status(self) -> int | None:
        """The exit status once the process ended (a registrar must never end by itself)."""
        return None if self.process is None else self.process.poll()

    def renewals(self) -> int:
        """How often it registered again under a new lease (`registration_rewritten`)."""
        return self.log_path.read_text(errors="replace").count('"registration_rewritten"')

    def stop(self) -> None:
        """SIGTERM (revokes the lease), SIGKILL if it lingers."""
        terminate(self.process, grace_s=10)


class Writer:
    """Random registrations without a lease under services w0..w2 (puts and deletes)."""

    def __init__(self, client: EtcdClient, seed: int) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.written = 0  # events etcd acknowledged
        self.failed = 0  # writes that raised (etcd unreachable or electing)
        self._keys: set[str] = set()

    async def write(self, n: int) -> None:
        """`n` writes (a third of them deletes of an existing key); failures are counted."""
        for _ in range(n):
            try:
                await self._one()
            except EtcdError:
                self.failed += 1
            else:
                self.written += 1

    async def _one(self) -> None:
        if self._keys and self.rng.random() < 0.3:
            key = self.rng.choice(sorted(self._keys))
            self._keys.discard(key)
            await self.client.delete(key.encode())
            return
        service = f"w{self.rng.randrange(3)}"
        key = f"{ROOT}{service}/{self.rng.randrange(20)}"
        address = f"10.{self.rng.randrange(1, 250)}.0.{self.rng.randrange(1, 250)}"
        await self.client.put(key.encode(), endpoint_json(address, self.rng.randrange(1, 65536)))
        self._keys.add(key)

    async def run_until(self, stop: asyncio.Event, pause_s: float = 0.02) -> None:
        """Write continuously until `stop` is set."""
        while not stop.is_set():
            await self.write(1)
            await asyncio.sleep(pause_s)


def envoy_clusters(envoy: EnvoyProcess) -> dict[str, list[str]]:
    """Envoy's clusters received over xDS (`added_via_api`) and their hosts, from /clusters."""
    data = json.loads(envoy.admin("/clusters?format=json"))
    out: dict[str, list[str]] = {}
    for cluster in data.get("cluster_statuses", []):
        if not cluster.get("added_via_api"):
            continue
        hosts = [h["address"]["socket_address"] for h in cluster.get("host_statuses", [])]
        keys = [f"{h['address']}:{h['port_value']}" for h in hosts]
        out[cluster["name"]] = sorted(keys, key=endpoint_order)
    return out


def start_envoy(serve: Serve, workdir: Path) -> EnvoyProcess:
    """A real Envoy whose only configuration source is serve's ADS."""
    options = EnvoyBootstrapOptions(
        node_id="faults", servers=(XdsServer("127.0.0.1", serve.xds_port),), admin_port=0
    )
    envoy = EnvoyProcess(envoy_bootstrap(options), workdir / "envoy")
    envoy.start()
    return envoy


def diff(etcd: dict[str, list[str]], envoy: dict[str, list[str]]) -> int:
    """How many (service, endpoint) pairs one side holds and the other does not (a service
    present on one side only counts once, even with no endpoints)."""
    count = 0
    for name in etcd.keys() | envoy.keys():
        if (name in etcd) != (name in envoy):
            count += max(1, len(etcd.get(name, envoy.get(name, []))))
        else:
            count += len(set(etcd[name]) ^ set(envoy[name]))
    return count
