"""Three `xdscp backend --capacity` processes behind a real Envoy whose STATIC cluster balances
with `client_side_weighted_round_robin` (no control plane: the weights come from the backends'
load reports alone)."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdscp.procs.envoy import EnvoyProcess
from xdscp.testing import free_port

XDSCP = str(Path(sys.executable).with_name("xdscp"))
_STARTED = re.compile(r"^backend (\S+): http [\d.]+:(\d+) grpc [\d.]+:(\d+)")
_CSWRR = "envoy.load_balancing_policies.client_side_weighted_round_robin"
_TYPES = "type.googleapis.com/envoy.extensions."
_POLICY = "client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin"


@dataclass
class BackendProcess:
    """One `xdscp backend` child process and the ports it printed."""

    name: str
    process: subprocess.Popen[str]
    http_port: int
    grpc_port: int

    def post(self, path: str) -> dict[str, Any]:
        """POST to the backend's own control path; its JSON answer."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            document: dict[str, Any] = json.loads(answer.read())
            return document


@contextlib.contextmanager
def backends(specs: list[tuple[str, float, str]]) -> Iterator[list[BackendProcess]]:
    """`xdscp backend --name N --capacity C --orca-format F` per spec, until the block ends."""
    started: list[BackendProcess] = []
    try:
        for name, capacity, form in specs:
            args = [
                XDSCP,
                "backend",
                "--name",
                name,
                "--capacity",
                str(capacity),
                "--orca-format",
                form,
            ]
            process = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            assert process.stdout is not None
            for line in process.stdout:  # the line it prints once listening (logs go to stderr)
                if found := _STARTED.match(line):
                    started.append(BackendProcess(name, process, int(found[2]), int(found[3])))
                    break
            else:
                raise AssertionError(
                    f"backend {name} exited with {process.wait()} before listening"
                )
        yield started
    finally:
        for backend in started:
            backend.process.terminate()
        for backend in started:
            backend.process.wait(timeout=60)


def bootstrap(listener_port: int, ports: list[int], *, grpc: bool) -> dict[str, Any]:
    """A listener on `listener_port` routing everything to the static cluster `web` of
    `ports`, balanced by client-side WRR (blackout 1 s, weights recomputed every 0.1 s); with
    `grpc`, upstream HTTP/2 and the out-of-band ORCA stream too."""
    policy: dict[str, Any] = {
        "@type": f"{_TYPES}load_balancing_policies.{_POLICY}",
        "blackout_period": "1s",
        "weight_update_period": "0.1s",
    }
    cluster: dict[str, Any] = {
        "name": "web",
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_balancing_policy": {
            "policies": [{"typed_extension_config": {"name": _CSWRR, "typed_config": policy}}]
        },
        "load_assignment": {
            "cluster_name": "web",
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _address(port)}} for port in ports]}
            ],
        },
    }
    if grpc:
        policy |= {"enable_oob_load_report": True, "oob_reporting_period": "1s"}
        options = {
            "@type": _TYPES + "upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options
        }
    manager = {
        "@type": _TYPES + "filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "in",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "web"}}],
                }
            ]
        },
        "http_filters": [
            {"name": "router", "typed_config": {"@type": _TYPES + "filters.http.router.v3.Router"}}
        ],
    }
    listener = {
        "name": "in",
        "address": _address(listener_port),
        "filter_chains": [{"filters": [{"name": "hcm", "typed_config": manager}]}],
    }
    return {
        "admin": {"address": _address(0)},
        "static_resources": {"listeners": [listener], "clusters": [cluster]},
    }


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


@contextlib.contextmanager
def envoy(
    tmp_path: Path, ports: list[int], *, grpc: bool = False
) -> Iterator[tuple[EnvoyProcess, int]]:
    """A running Envoy (one worker: one balancer) and its listener port."""
    listener_port = free_port()
    process = EnvoyProcess(bootstrap(listener_port, ports, grpc=grpc), tmp_path / "envoy")
    try:
        process.start(timeout_s=120)
        yield process, listener_port
    finally:
        process.stop()


def weights(proxy: EnvoyProcess) -> dict[int, int]:
    """The weight Envoy's balancer gives each host of `web` (port → weight), from /clusters."""
    with urllib.request.urlopen(f"{proxy.admin_url}/clusters?format=json", timeout=30) as answer:
        document = json.loads(answer.read())
    (web,) = [cluster for cluster in document["cluster_statuses"] if cluster["name"] == "web"]
    return {
        host["address"]["socket_address"]["port_value"]: int(host.get("weight", 1))
        for host in web["host_statuses"]
    }


def stat(proxy: EnvoyProcess, name: str) -> int:
    """One counter or gauge of Envoy's."""
    with urllib.request.urlopen(
        f"{proxy.admin_url}/stats?filter=^{re.escape(name)}$", timeout=30
    ) as answer:
        text = answer.read().decode()
    return int(text.split(":")[1]) if ":" in text else 0


def http_requests(port: int, count: int) -> Counter[str]:
    """`count` GETs through Envoy on one kept-alive connection: answers per backend name."""
    answered: Counter[str] = Counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(count):
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read()
            answered[response.headers.get("x-backend", f"status {response.status}")] += 1
    finally:
        connection.close()
    return answered


def ratios(weights: dict[int, int], ports: list[int]) -> list[float]:
    """Each host's weight over the first's."""
    first = weights[ports[0]]
    return [weights[port] / first for port in ports]
