"""`xdscp serve` refuses an address it cannot listen on: one line naming the address and
what to do, a non-zero exit, no traceback, and nothing listening meanwhile."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.serve import get_json
from xdscp.testing import free_port, wait_until

SERVICES = "services: {web: {endpoints: [{address: 10.0.0.1, port: 80}]}}\n"


@pytest.fixture
def services(tmp_path: Path) -> Path:
    path = tmp_path / "services.yaml"
    path.write_text(SERVICES)
    return path


def _serve(services: Path, xds: str, admin: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "xdscp", "--log-format", "json", "serve", "--static",
         str(services), "--xds", xds, "--admin", admin],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _refused(services: Path, xds: str, admin: str, *, admin_port: int | None = None) -> str:
    """Run a serve that must refuse to start: its one line of output. With `admin_port`,
    it fails at once if that admin port ever answers (the serve started after all)."""
    proc = _serve(services, xds, admin)
    deadline = time.monotonic() + 60
    while proc.poll() is None:
        if admin_port is not None:
            try:
                get_json(f"http://127.0.0.1:{admin_port}/healthz")
            except OSError:
                pass
            else:
                proc.kill()
                proc.communicate()
                pytest.fail(f"the serve on {xds} started instead of refusing")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("serve neither started nor exited")
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in err
    assert "listening" not in err  # neither xds_listening nor admin_listening was logged
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def first_serve(services: Path) -> Iterator[int]:
    """A running serve; its xDS port."""
    xds, admin = free_port(), free_port()
    proc = _serve(services, f"127.0.0.1:{xds}", f"127.0.0.1:{admin}")
    try:
        wait_until(lambda: get_json(f"http://127.0.0.1:{admin}/readyz")[0] == 200, 60)
        yield xds
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_a_second_serve_on_the_same_xds_port_is_refused(services: Path, first_serve: int) -> None:
    """grpc lets a second process listen on a port (SO_REUSEPORT) by default: two control
    planes would split the clients at random. The second serve is refused instead."""
    admin = free_port()
    line = _refused(services, f"127.0.0.1:{first_serve}", f"127.0.0.1:{admin}", admin_port=admin)
    assert f"xDS address 127.0.0.1:{first_serve}" in line
    assert "in use" in line
    assert "--xds" in line


def test_an_admin_port_in_use_is_refused_before_the_xds_port_listens(services: Path) -> None:
    """The admin port held by another program: refused before anything listens."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        line = _refused(services, f"127.0.0.1:{free_port()}", f"127.0.0.1:{held}")
    assert f"admin address 127.0.0.1:{held}" in line
    assert "in use" in line
    assert "--admin" in line


@pytest.mark.parametrize("flag", ["--xds", "--admin"])
def test_an_address_of_another_host_is_refused(services: Path, flag: str) -> None:
    """An address no interface of this host has (only bound to, never sent to)."""
    addresses = {"--xds": f"127.0.0.1:{free_port()}", "--admin": f"127.0.0.1:{free_port()}"}
    addresses[flag] = "10.255.255.1:0"
    line = _refused(services, addresses["--xds"], addresses["--admin"])
    assert "10.255.255.1:0" in line
    assert "no such address" in line
    assert flag in line
