"""The rig of `bench/hostile.py`: a real `xdscp serve`, a real Envoy, a change a second.

`Rig` starts `python -m xdscp serve --static FILE` (JSON logs to a file) on free loopback
ports and an Envoy fed by it over ADS. `Changer` (a thread) rewrites the services file once a
second — service `web` gets a new endpoint port — sends SIGHUP (re-read now) and polls the
Envoy's `/clusters` until the new endpoint is there: that delay is the propagation. `RssProbe`
(a thread) samples serve's resident memory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.procs import terminate
from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port

SERVICES = 200  # services s000..s199 besides `web`; an EDS response for all is ~20 KB
STEP_LIMIT_S = 15.0  # a change not in Envoy by then counts as lost


def service_names() -> list[str]:
    """Every service of the rig's file, `web` last."""
    return [f"s{i:03d}" for i in range(SERVICES)] + ["web"]


def services_yaml(web_port: int) -> str:
    """The services file with `web` on `web_port`."""
    lines = ["services:"]
    lines.extend(
        f"  s{i:03d}: {{endpoints: [{{address: 10.1.{i // 250}.{i % 250 + 1}, port: 80}}]}}"
        for i in range(SERVICES)
    )
    lines.append(f"  web: {{endpoints: [{{address: 10.0.0.1, port: {web_port}}}]}}")
    return "\n".join(lines) + "\n"


def rss_mib(pid: int) -> float:
    """The process's resident set (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET; (0, error) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


class Rig:
    """`xdscp serve` and one Envoy, started by `start()`, stopped by `stop()`."""

    def __init__(self, workdir: Path, *, write_timeout_s: float) -> None:
        self.workdir = workdir
        self.write_timeout_s = write_timeout_s
        self.services = workdir / "services.yaml"
        self.log_path = workdir / "serve.log"
        self.xds_port, self.admin_port, self.listener_port = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.envoy: EnvoyProcess | None = None

    @property
    def pid(self) -> int:
        """serve's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Start serve, wait until ready, then start Envoy (ready once LIVE)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.services.write_text(services_yaml(20000))
        args = [
            sys.executable, "-m", "xdscp", "--log-format", "json", "serve",
            "--static", str(self.services), "--xds", f"127.0.0.1:{self.xds_port}",
            "--admin", f"127.0.0.1:{self.admin_port}",
            "--listener", f"127.0.0.1:{self.listener_port}",
            "--write-timeout", str(self.write_timeout_s),
        ]  # fmt: skip
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=out)
        deadline = time.monotonic() + 30
        while get(f"http://127.0.0.1:{self.admin_port}/ready")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not become ready; see {self.log_path}")
            time.sleep(0.05)
        options = EnvoyBootstrapOptions(
            node_id="envoy-hostile", servers=(XdsServer("127.0.0.1", self.xds_port),), admin_port=0
        )
        self.envoy = EnvoyProcess(envoy_bootstrap(options), self.workdir / "envoy")
        self.envoy.start()

    def alive(self) -> bool:
        """serve still runs and answers /ready."""
        ready = get(f"http://127.0.0.1:{self.admin_port}/ready")[0] == 200
        return self.proc is not None and self.proc.poll() is None and ready

    def metric(self, name: str) -> dict[str, float]:
        """Each sample of a Prometheus metric family on /metrics: labels text -> value."""
        _, body = get(f"http://127.0.0.1:{self.admin_port}/metrics")
        found: dict[str, float] = {}
        for line in body.splitlines():
            if line.startswith(name):
                key, _, value = line.rpartition(" ")
                found[key.removeprefix(name)] = float(value)
        return found

    def log_events(self, event: str) -> list[dict[str, object]]:
        """serve's JSON log records named `event`."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if f'"{event}"' in line:
                record = json.loads(line)
                if record.get("event") == event:
                    records.append(record)
        return records

    def stop(self) -> int | None:
        """Stop Envoy, then serve (SIGTERM); serve's exit code."""
        if self.envoy is not None:
            self.envoy.stop()
        if self.proc is None:
            return None
        terminate(self.proc, grace_s=10)
        return self.proc.returncode


@dataclass
class Changer:
    """A thread that makes one change a second and times each one into Envoy (ms)."""

    rig: Rig
    period_s: float = 1.0
    delays_ms: list[tuple[str, float]] = field(default_factory=list)  # (phase, delay)
    lost: int = 0
    phase: str = "before"
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _measured: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> None:
        """Begin changing (first change at once)."""
        self._thread = threading.Thread(target=self._run, name="changer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the change in flight."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STEP_LIMIT_S + 5)

    def count(self, phase: str) -> int:
        """Changes measured in `phase`."""
        return sum(1 for p, _ in self.delays_ms if p == phase)

    def wait_count(self, phase: str, count: int, timeout_s: float) -> bool:
        """Block until `count` changes of `phase` are measured (False: not within the limit)."""
        with self._measured:
            return self._measured.wait_for(lambda: self.count(phase) >= count, timeout_s)

    def _run(self) -> None:
        port = 20000
        while not self._stop.is_set():
            port += 1
            started = time.monotonic()
            phase = self.phase
            self.rig.services.write_text(services_yaml(port))
            os.kill(self.rig.pid, signal.SIGHUP)
            delay = self._wait_for(port, started)
            with self._measured:
                if delay is None:
                    self.lost += 1
                else:
                    self.delays_ms.append((phase, delay))
                self._measured.notify_all()
            self._stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))

    def _wait_for(self, port: int, started: float) -> float | None:
        assert self.rig.envoy is not None
        wanted = f"web::10.0.0.1:{port}::"
        while time.monotonic() - started < STEP_LIMIT_S:
            try:
                if wanted in self.rig.envoy.admin("/clusters"):
                    return (time.monotonic() - started) * 1000
            except OSError:
                pass
            time.sleep(0.005)  # polling Envoy's admin: the condition itself, bounded above
        return None


@dataclass
class RssProbe:
    """A thread sampling a process's RSS every 50 ms."""

    pid: int
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin sampling."""
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def peak(self) -> float:
        """The highest sample (MiB)."""
        return max(self.samples, default=0.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(rss_mib(self.pid))
            except (OSError, RuntimeError):
                return
            self._stop.wait(0.05)
