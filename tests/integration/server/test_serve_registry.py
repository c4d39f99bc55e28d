"""`xdscp serve --etcd` as users run it: the registry's metrics on `/metrics`, and values
that once stopped serve."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.etcd import EtcdServer
from xdscp.etcd import EtcdClient
from xdscp.testing import free_port, wait_until

pytestmark = pytest.mark.etcd

GOOD = b'{"address": "10.0.0.1", "port": 80}'
LIMIT_S = 20.0  # a subprocess serve on a loaded machine


def _metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _rejected(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return sum(v for (name, _), v in metrics.items() if name == "xdscp_registry_rejected_total")


@pytest.fixture
def serve(etcd_server: EtcdServer) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`xdscp serve --etcd` in a subprocess, and its admin base URL."""
    admin = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xdscp", "--log-format", "json", "serve",
         "--etcd", etcd_server.url, "--xds", "127.0.0.1:0", "--admin", f"127.0.0.1:{admin}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield proc, f"http://127.0.0.1:{admin}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


async def test_registry_metrics_are_served_on_metrics(
    etcd_server: EtcdServer, serve: tuple[subprocess.Popen[str], str]
) -> None:
    """The registry's metrics, documented in the README, are on serve's own `/metrics`
    (they used to go to a private registry): etcd up, publishes, services, endpoints and
    rejected entries by reason."""
    proc, base = serve
    async with EtcdClient(etcd_server.config()) as client:
        await client.put(b"/xdscp/services/web/a", GOOD)
        await client.put(b"/xdscp/services/web/b", b'{"address": "10.0.0.2"}')  # no port
        wait_until(lambda: _status(f"{base}/readyz") == 200, LIMIT_S)
        metrics = wait_until(
            lambda: (m := _metrics(base)).get(("xdscp_registry_endpoints", ())) == 1 and m,
            LIMIT_S,
        )
    assert metrics[("xdscp_registry_etcd_up", ())] == 1
    assert metrics[("xdscp_registry_services", ())] == 1
    assert metrics[("xdscp_registry_publishes_total", ())] >= 1
    assert _rejected(metrics) == 1
    assert proc.poll() is None


async def test_deeply_nested_values_do_not_stop_serve(
    etcd_server: EtcdServer, serve: tuple[subprocess.Popen[str], str]
) -> None:
    """A 3000-deep JSON value as an endpoint and as a policy (it used to end serve with
    status 0 and nothing logged, at every restart) is rejected and counted; the good
    endpoint keeps serving and serve stops only on SIGTERM, with status 0."""
    proc, base = serve
    deep = b"[" * 3000 + b"]" * 3000
    async with EtcdClient(etcd_server.config()) as client:
        await client.put(b"/xdscp/services/web/a", GOOD)
        wait_until(lambda: _status(f"{base}/readyz") == 200, LIMIT_S)
        await client.put(b"/xdscp/services/web/deep", deep)
        await client.put(b"/xdscp/policies/web", deep)
        await client.put(b"/xdscp/services/api/a", GOOD)  # written after: still applied
        wait_until(lambda: _metrics(base).get(("xdscp_registry_services", ())) == 2, LIMIT_S)
    assert _rejected(_metrics(base)) == 2
    assert "web" in json.dumps(_json(f"{base}/debug/resources"))
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
