"""`promtool check metrics` (Debian's prometheus package) on a real `xdscp serve`'s /metrics:
the names, types, help texts and units Grafana dashboards are built on pass Prometheus's own
linter."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.fixtures.requirements import find_tool
from xdscp.testing import free_port

pytestmark = pytest.mark.etcd


@pytest.fixture
def serve(etcd_server: EtcdServer) -> Iterator[str]:
    """`xdscp serve --etcd` with one registration; its admin base URL."""
    admin = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xdscp", "serve", "--etcd", etcd_server.url,
         "--xds", "127.0.0.1:0", "--admin", f"127.0.0.1:{admin}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{admin}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _metrics_when_ready(base: str, limit: float = 30.0) -> bytes:
    deadline = time.monotonic() + limit
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5):
                pass
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
                return bytes(response.read())
        except OSError:
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.05)


@pytest.mark.requires("promtool")
def test_promtool_finds_no_problem_in_serve_metrics(serve: str) -> None:
    """promtool reads every metric family serve exposes and reports no lint problem."""
    promtool = find_tool("promtool")
    assert promtool is not None  # the marker skips the test without it
    text = _metrics_when_ready(serve)
    assert b"xdscp_registry_etcd_up" in text
    assert b"xdscp_pushes_total" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    problems = (result.stdout + result.stderr).decode()
    assert (result.returncode, problems) == (0, "")
