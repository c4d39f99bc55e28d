"""The demo's child processes: etcd, demo backends, `xdscp serve` and Envoy, on loopback.

Every port is chosen (or checked free) before anything starts, so a busy port fails at once
with the port's role and the flag that moves it. Children are started together and stopped in
reverse dependency order (Envoy, control plane, backends, etcd), each with SIGTERM and then
SIGKILL after a grace period, and reaped: nothing is left running when `stop()` returns.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.errors import ProcessError
from xdscp.procs import EnvoyProcess, EtcdServer, find_binary, find_etcd, free_port, terminate

log = structlog.get_logger(__name__)

SERVICE = "web"
STOP_GRACE_S = 10.0
# The control plane's load reporting, fast enough for the tour's adaptive step to take
# seconds: Envoy reports its load (LRS) every second (LRS's minimum), and xdscp decides the
# adaptive services' weights every quarter second (`xds.weigh_interval`).
LOAD_REPORT_INTERVAL_S = 1.0
WEIGH_INTERVAL_S = 0.25
READY_TIMEOUT_S = 90.0  # a child's start (a Python import) on a loaded machine: far beyond


def problem(what: str, why: str, fix: str) -> str:
    """A failure message in three parts: what failed, why, and what to do about it."""
    return f"{what}\n  why: {why}\n  fix: {fix}"


def check_port_free(port: int, role: str, option: str) -> int:
    """`port` if 127.0.0.1:`port` can be bound now, else ProcessError naming its role."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ProcessError(
                problem(
                    f"port {port} on 127.0.0.1 ({role}) is not available",
                    str(exc),
                    f"stop what uses it (`ss -ltnp 'sport = :{port}'` shows it), or choose"
                    f" another port with {option} (0 picks a free one)",
                )
            ) from None
    return port


def _port(requested: int, role: str, option: str) -> int:
    return free_port() if requested == 0 else check_port_free(requested, role, option)


def _http_status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


@dataclass
class PythonChild:
    """An `xdscp` sub-command run by this interpreter, ready when `probe` says so."""

    name: str
    args: list[str]
    log_path: Path
    probe: Callable[[], bool]
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # added to this process's environment
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running process's id, if started."""
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        """Start the process, its output going to `log_path`."""
        command = [sys.executable, "-m", "xdscp", "--log-format", "json", *self.args]
        env = {**os.environ, **self.env} if self.env else None
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own argument list
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        log.info("demo_child_starting", child=self.name, pid=self.process.pid)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until `probe()` is true; ProcessError with the log's tail if it exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if self.probe():
                return
            time.sleep(0.05)
        raise ProcessError(
            problem(
                f"{self.name} was not ready within {timeout_s:.0f} s",
                f"see its log, {self.log_path}",
                "a loaded machine can be slow: run the demo again",
            )
        )

    def check_alive(self) -> None:
        """ProcessError (with the end of its log) when the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-1500:].strip()
            raise ProcessError(
                problem(
                    f"{self.name} exited with status {self.process.returncode}",
                    tail or "(no output)",
                    f"see {self.log_path}",
                )
            )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period; reaps the process. Safe twice."""
        pid = terminate(self.process, grace_s=STOP_GRACE_S)
        if pid is not None:
            log.info("demo_child_stopped", child=self.name, pid=pid)


@dataclass(frozen=True)
class DemoBackend:
    """One demo backend: its name, the weight it registers with and the capacity
    (requests/s) it reports its load against (ORCA; None: it reports none)."""

    name: str
    weight: int
    capacity: float | None = None


@dataclass(frozen=True)
class StackOptions:
    """What the demo runs and where (0 ports are picked free)."""

    workdir: Path
    backends: Sequence[DemoBackend]
    listener_port: int = 0
    xds_port: int = 0
    admin_port: int = 0
    envoy_bin: str | None = None
    etcd_bin: str | None = None
    delta: bool = False  # Envoy on incremental xDS (DELTA_GRPC)


def _backend(spec: DemoBackend, workdir: Path) -> PythonChild:
    port = free_port()
    args = ["backend", "--name", spec.name, "--http-port", str(port), "--grpc-port", "-1"]
    if spec.capacity is not None:
        args += ["--capacity", f"{spec.capacity:g}"]
    return PythonChild(
        f"backend {spec.name}",
        args,
        workdir / f"backend-{spec.name}.log",
        lambda: _http_status(port, "/") == 200,
        {"http": port},
    )


def _binary(given: str | None, name: str, option: str, default: Callable[[], str]) -> str:
    if given is None:
        try:
            return default()
        except ProcessError as exc:
            raise ProcessError(
                problem(
                    f"the {name} binary was not found",
                    str(exc),
                    f"install it (`make venv`), or give its path with {option}",
                )
            ) from None
    fix = (
        f"pass the path of a {name} executable, or leave {option} out to use the one"
        " installed with xdscp (`make venv`)"
    )
    if not Path(given).is_file():
        raise ProcessError(
            problem(
                f"the {name} binary was not found",
                f"{given} (given with {option}) does not exist",
                fix,
            )
        )
    if not os.access(given, os.X_OK):
        raise ProcessError(
            problem(f"the {name} binary cannot be run", f"{given} is not executable", fix)
        )
    return given


class Stack:
    """The demo's children. `launch()` starts etcd, backends and the control plane; then
    `start_envoy()`; `stop()` stops whatever was started."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        workdir = options.workdir
        self.envoy_bin = _binary(
            options.envoy_bin, "Envoy", "--envoy-bin PATH", lambda: find_binary("envoy")
        )
        etcd_bin = _binary(options.etcd_bin, "etcd", "--etcd-bin PATH", find_etcd)
        self.listener_port = _port(options.listener_port, "the Envoy listener", "--listener-port")
        self.xds_port = _port(options.xds_port, "xdscp's xDS port", "--xds-port")
        self.admin_port = _port(options.admin_port, "xdscp's admin port", "--admin-port")
        self.etcd = EtcdServer(etcd_bin, workdir / "etcd-data", name="demo", own_process_group=True)
        self.backends = [_backend(spec, workdir) for spec in options.backends]
        self.plane = PythonChild(
            "control plane (xdscp serve)",
            self._serve_args(),
            workdir / "xdscp-serve.log",
            lambda: _http_status(self.admin_port, "/readyz") == 200,
            {"xds": self.xds_port, "admin": self.admin_port},
            env={"XDSCP_XDS__WEIGH_INTERVAL": f"{WEIGH_INTERVAL_S:g}"},
        )
        self.envoy: EnvoyProcess | None = None

    def _serve_args(self) -> list[str]:
        return [
            "--log-level", "warning", "serve",
            "--etcd", self.etcd.url,
            "--xds", f"127.0.0.1:{self.xds_port}",
            "--admin", f"127.0.0.1:{self.admin_port}",
            "--listener", f"127.0.0.1:{self.listener_port}",
            "--load-report-interval", f"{LOAD_REPORT_INTERVAL_S:g}",
        ]  # fmt: skip

    @property
    def python_children(self) -> list[PythonChild]:
        """The `xdscp` children: backends and the control plane."""
        return [*self.backends, self.plane]

    def launch(self) -> None:
        """Start etcd, every backend and the control plane, without waiting for them."""
        self.etcd.start(wait=False)
        for child in self.python_children:
            child.start()

    def start_envoy(self) -> EnvoyProcess:
        """Start Envoy (ADS to the control plane) and wait until its admin says LIVE."""
        options = EnvoyBootstrapOptions(
            node_id="demo-envoy",
            servers=(XdsServer("127.0.0.1", self.xds_port),),
            admin_port=0,
            initial_fetch_timeout_s=10.0,
            delta=self.options.delta,
        )
        workdir = self.options.workdir / "envoy"
        self.envoy = EnvoyProcess(envoy_bootstrap(options), workdir, binary=self.envoy_bin)
        try:
            self.envoy.start()
        except OSError as exc:
            raise ProcessError(
                problem(
                    "Envoy could not be started",
                    f"{self.envoy_bin}: {exc}",
                    "pass an Envoy executable with --envoy-bin, or leave it out",
                )
            ) from None
        except ProcessError as exc:
            raise ProcessError(
                problem("Envoy did not start", str(exc), f"see {self.envoy.log_path}")
            ) from None
        return self.envoy

    def check_alive(self) -> None:
        """ProcessError naming the first child that has exited."""
        if self.etcd.process is not None and self.etcd.process.poll() is not None:
            raise ProcessError(
                problem(
                    f"etcd exited with status {self.etcd.process.returncode}",
                    "it stopped while the demo ran",
                    f"see {self.etcd.log_path}",
                )
            )
        for child in self.python_children:
            child.check_alive()

    def children(self) -> list[dict[str, object]]:
        """Every child started: name, pid and ports (for the report and the tests)."""
        rows: list[dict[str, object]] = [
            {
                "name": "etcd",
                "pid": self.etcd.pid,
                "ports": {"client": self.etcd.client_port, "peer": self.etcd.peer_port},
            }
        ]
        rows += [{"name": c.name, "pid": c.pid, "ports": c.ports} for c in self.python_children]
        if self.envoy is not None and self.envoy.pid is not None:
            rows.append(
                {
                    "name": "envoy",
                    "pid": self.envoy.pid,
                    "ports": {"listener": self.listener_port, "admin": self.envoy_admin_port},
                }
            )
        return rows

    @property
    def envoy_admin_port(self) -> int:
        """Envoy's admin port (0 before Envoy is up)."""
        return 0 if self.envoy is None else self.envoy.admin_port

    def stop(self) -> None:
        """Stop every child, dependents first; each is reaped before the next, and one that
        fails to stop does not keep the others running."""
        stops: list[Callable[[], None]] = [self.plane.stop]
        if self.envoy is not None:
            stops.insert(0, self.envoy.stop)
        stops += [b.stop for b in self.backends] + [self.etcd.stop]
        for stop in stops:
            try:
                stop()
            except (OSError, subprocess.SubprocessError) as exc:
                log.exception("demo_child_stop_failed", error=str(exc))
