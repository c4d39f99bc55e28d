"""`xdscp serve` with TLS as users run it, and `xdscp bootstrap ... --tls-ca` clients'
bootstraps: the TLS serve and the Envoy and gRPC TLS tests drive these."""

from __future__ import annotations

import contextlib
import json
import selectors
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.cli import child_env
from tests.harness.serve import get_json
from xdscp.procs import terminate
from xdscp.procs.etcd import TlsFiles
from xdscp.testing import wait_until

XDSCP = (sys.executable, "-m", "xdscp")
STARTED_S = 30.0


def static_file(path: Path, endpoints: list[tuple[str, int]], name: str = "web") -> Path:
    """A `--static` services file: one service over `endpoints` (host, port)."""
    lines = [f"services:\n  {name}:\n    endpoints:\n"]
    lines += [f"      - {{address: {host}, port: {port}}}\n" for host, port in endpoints]
    path.write_text("".join(lines))
    return path


def tls_flags(files: TlsFiles, *, mutual: bool) -> list[str]:
    """serve's flags for TLS with the server certificate (and the CA for clients, if mutual)."""
    flags = ["--tls-cert", str(files.server_cert), "--tls-key", str(files.server_key)]
    return [*flags, "--tls-client-ca", str(files.ca)] if mutual else flags


def client_flags(files: TlsFiles, *, mutual: bool) -> list[str]:
    """bootstrap's flags: trust the CA (and present the client certificate, if mutual)."""
    flags = ["--tls-ca", str(files.ca)]
    if mutual:
        flags += ["--tls-cert", str(files.client_cert), "--tls-key", str(files.client_key)]
    return flags


def bootstrap(*args: str) -> dict[str, Any]:
    """The JSON `xdscp bootstrap ARGS` prints (run as a user would, in its own process)."""
    done = subprocess.run(
        [*XDSCP, "bootstrap", *args], capture_output=True, text=True, timeout=60, check=True
    )
    document: dict[str, Any] = json.loads(done.stdout)
    return document


@dataclass
class Served:
    """A running `xdscp serve`: its ports (it picked them: `127.0.0.1:0`) and its log."""

    process: subprocess.Popen[bytes]
    xds_port: int
    admin_port: int
    log: Path

    def admin(self, path: str) -> Any:
        """GET an admin path's JSON."""
        return get_json(f"http://127.0.0.1:{self.admin_port}{path}")[1]


def _banner(process: subprocess.Popen[bytes], log: Path) -> str:
    """serve's first stdout line (printed once it listens), within STARTED_S."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(STARTED_S):
            raise AssertionError(f"serve did not start: {log.read_text()[-2000:]}")
    line = process.stdout.readline().decode()
    assert line, f"serve exited with {process.wait()}: {log.read_text()[-2000:]}"
    return line


@contextlib.contextmanager
def serve(workdir: Path, *flags: str) -> Iterator[Served]:
    """`xdscp serve FLAGS --xds 127.0.0.1:0 --admin 127.0.0.1:0`, ready; stopped after."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "xdscp.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*XDSCP, "--log-format", "json", "serve", *flags,
             "--xds", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=sink, env=child_env(),
        )  # fmt: skip
    try:
        # "xdscp serving xDS on 127.0.0.1:PORT, admin on 127.0.0.1:PORT"
        words = _banner(process, log).replace(",", " ").split()
        xds, admin = (int(w.rsplit(":", 1)[1]) for w in words if w.startswith("127.0.0.1:"))
        served = Served(process, xds, admin, log)
        wait_until(lambda: get_json(f"http://127.0.0.1:{admin}/readyz")[0] == 200)
        yield served
    finally:
        terminate(process, grace_s=10)


def node_status(served: Served, node_id: str) -> dict[str, Any]:
    """xdscp's /debug/nodes entry for `node_id` ({} while it is not connected)."""
    nodes = [n for n in served.admin("/debug/nodes") if n["node"] == node_id]
    return dict(nodes[0]) if nodes else {}
