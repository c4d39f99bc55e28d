"""The servers under test: how to start each, find its port, and trigger one change.

- baseline: `bench.fanout.baseline`, pre-serialized responses (the floor);
- go: the go-control-plane peer in bench/peers/go-control-plane, built on demand;
- xdscp: `xdscp serve --static FILE.yaml`; the change rewrites the file and sends SIGHUP.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fanout.procs import Child
from bench.fanout.resources import CLUSTERS, cluster_name, endpoints_of
from xdscp.testing import free_port

PEERS = Path(__file__).resolve().parent.parent / "peers"
GO_BINARY = PEERS / "bin" / "go-control-plane"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Server:
    """One server under test."""

    name: str
    skip_reason: Callable[[], str | None]
    start: Callable[[Path, Path], Awaitable[tuple[Child, int]]]
    trigger: Callable[[Child, int, Path], Awaitable[None]]
    server_acks: Callable[[Child], Awaitable[dict[str, int]]] | None = None


async def _start_listening(name: str, argv: list[str], workdir: Path) -> tuple[Child, int]:
    child = await Child.start(name, argv, workdir / f"{name}.stderr.log")
    event = await child.wait_event("listening", START_TIMEOUT_S)
    return child, int(event["port"])


async def _send_change(child: Child, change: int, _workdir: Path) -> None:
    await child.send(f"CHANGE {change}")


def _always() -> str | None:
    return None


async def _start_baseline(resources: Path, workdir: Path) -> tuple[Child, int]:
    argv = [sys.executable, "-m", "bench.fanout.baseline", "--resources", str(resources)]
    return await _start_listening("baseline", argv, workdir)


def go_toolchain() -> str | None:
    """The `go` command, from PATH or /usr/local/go/bin."""
    return shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")


def go_build(package: str) -> str | None:
    """`go build` of the peer `package` (a folder of bench/peers) into bench/peers/bin; the
    reason it can't, or None. Always run: go's own build cache makes an unchanged peer a
    relink, and a changed main.go, go.mod or go.sum is never served stale."""
    go = go_toolchain()
    if go is None:
        return "no Go toolchain (go not on PATH nor in /usr/local/go/bin)"
    built = subprocess.run(
        [go, "build", "-mod=readonly", "-buildvcs=false", "-o", str(PEERS / "bin" / package),
         f"./{package}"],
        cwd=PEERS, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    return None if built.returncode == 0 else f"go build failed: {built.stderr[-500:]}"


def build_go_peer() -> str | None:
    """Build the fan-out peer; the reason it can't, or None."""
    return go_build(GO_BINARY.name)


async def _start_go(resources: Path, workdir: Path) -> tuple[Child, int]:
    return await _start_listening("go", [str(GO_BINARY), "-resources", str(resources)], workdir)


# The `xdscp serve` options this adapter passes (checked against `xdscp serve --help`).
XDSCP_FLAGS = ("--static", "--xds", "--admin", "--listener", "--no-registry")


def xdscp_command() -> str | None:
    """The `xdscp` entry point next to this interpreter, or on PATH."""
    local = Path(sys.executable).parent / "xdscp"
    return str(local) if local.exists() else shutil.which("xdscp")


def xdscp_skip_reason() -> str | None:
    """Why xdscp can't run here: no entry point, or no `serve --static` yet."""
    command = xdscp_command()
    if command is None:
        return "no xdscp entry point"
    probe = subprocess.run(
        [command, "serve", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    offered = set(re.findall(r"--[a-z][a-z-]*", probe.stdout))
    if probe.returncode != 0 or "--static" not in offered:
        return "`xdscp serve --static` is not available yet"
    missing = [flag for flag in XDSCP_FLAGS if flag not in offered]
    if missing:
        return f"`xdscp serve` lacks {missing}: update XDSCP_FLAGS in bench/fanout/servers.py"
    return None


def static_yaml(change: int) -> str:
    """The services of change `change` as xdscp's `--static` file (xdscp.sources.static)."""
    lines = ["services:"]
    for index in range(CLUSTERS):
        lines += [f"  {cluster_name(index)}:", "    endpoints:"]
        lines += [
            f"      - {{address: {address}, port: {port}}}"
            for address, port in endpoints_of(index, change)
        ]
    return "\n".join(lines) + "\n"


def write_static(path: Path, change: int) -> None:
    """Replace `path` atomically with the static file of `change`."""
    partial = path.with_suffix(".tmp")
    partial.write_text(static_yaml(change))
    os.replace(partial, path)


async def _start_xdscp(_resources: Path, workdir: Path) -> tuple[Child, int]:
    static = workdir / "services.yaml"
    write_static(static, 0)
    port = free_port()
    command = xdscp_command()
    assert command is not None
    # Warnings only: per-stream info logs would be measured too (the peers log nothing).
    admin = free_port()
    argv = [command, "--log-level", "warning", "--log-format", "json", "serve",
            "--static", str(static), "--no-registry",
            "--xds", f"127.0.0.1:{port}",
            "--admin", f"127.0.0.1:{admin}",
            "--listener", f"127.0.0.1:{free_port()}"]  # fmt: skip
    child = await Child.start("xdscp", argv, workdir / "xdscp.stderr.log", commands=False)
    child.info["admin"] = admin
    await wait_port(port, START_TIMEOUT_S)
    return child, port


async def wait_port(port: int, limit_s: float) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:`port`."""
    async with asyncio.timeout(limit_s):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


def count_in_sync(streams: list[dict[str, Any]], type_name: str) -> dict[str, int]:
    """Of xdscp's /debug/nodes entries: streams, and those that ACKed the last `type_name` sent."""
    in_sync = sum(1 for s in streams if s.get("types", {}).get(type_name, {}).get("in_sync"))
    return {"streams": len(streams), "in_sync": in_sync}


async def _xdscp_acks(child: Child) -> dict[str, int]:
    url = f"http://127.0.0.1:{child.info['admin']}/debug/nodes"

    def fetch() -> list[dict[str, Any]]:
        with urllib.request.urlopen(url, timeout=30) as response:
            return list(json.load(response))

    return count_in_sync(await asyncio.to_thread(fetch), "ClusterLoadAssignment")


async def _rewrite_static(child: Child, change: int, workdir: Path) -> None:
    """Rewrite the file, then SIGHUP: xdscp re-reads it at once, as an operator would ask.

    The peers are told of a change directly too (a command on stdin), so no server waits
    for a poll interval.
    """
    write_static(workdir / "services.yaml", change)
    os.kill(child.pid, signal.SIGHUP)


SERVERS = {
    "baseline": Server("baseline", _always, _start_baseline, _send_change),
    "go": Server("go", build_go_peer, _start_go, _send_change),
    "xdscp": Server("xdscp", xdscp_skip_reason, _start_xdscp, _rewrite_static, _xdscp_acks),
}
