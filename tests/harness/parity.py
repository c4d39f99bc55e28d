"""A real Envoy serving static copies of the parity cases' clusters, and a client to count picks.

Each `Case` is one Cluster + ClusterLoadAssignment pair (the protos the reference balancer
reads) and the route-level hash policies of its listener. `bootstrap` turns the cases into
Envoy static resources: the cluster becomes `type: STATIC` with `load_assignment` = the CLA
(its balancing settings untouched) and gets a listener on 127.0.0.1, port 0, routing `/` to it.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf import json_format

from xdscp.procs import find_binary
from xdscp.procs.envoy import EnvoyProcess

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


@dataclass(frozen=True)
class Case:
    """One cluster under test, the route hash policies of its listener, extra route fields."""

    cluster: Any
    cla: Any
    route_hash_policies: Sequence[Any] = ()
    routes: Sequence[dict[str, Any]] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        """The cluster name (also the listener's)."""
        return str(self.cluster.name)


def _to_dict(message: Any) -> dict[str, Any]:
    return dict(json_format.MessageToDict(message, preserving_proto_field_name=True))


def static_cluster(case: Case) -> dict[str, Any]:
    """The case's Cluster as a static cluster carrying its CLA."""
    static = cluster_pb2.Cluster()
    static.CopyFrom(case.cluster)
    static.ClearField("eds_cluster_config")
    static.type = cluster_pb2.Cluster.STATIC
    static.load_assignment.CopyFrom(case.cla)
    static.load_assignment.cluster_name = case.name
    return _to_dict(static)


def _route(case: Case) -> list[dict[str, Any]]:
    action: dict[str, Any] = {"cluster": case.name, "timeout": "0s"}
    if case.route_hash_policies:
        action["hash_policy"] = [_to_dict(p) for p in case.route_hash_policies]
    extra = [{**r, "route": {**action, **r.get("route", {})}} for r in case.routes]
    return [*extra, {"match": {"prefix": "/"}, "route": action}]


def listener(case: Case) -> dict[str, Any]:
    """A listener on 127.0.0.1 (free port) routing every request to the case's cluster."""
    hcm = {
        "@type": f"{_HCM}HttpConnectionManager",
        "stat_prefix": case.name,
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
        "route_config": {
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": _route(case)}]
        },
    }
    return {
        "name": case.name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def bootstrap(cases: Iterable[Case]) -> dict[str, Any]:
    """An Envoy bootstrap with an admin on a free port and every case as static resources."""
    cases = list(cases)
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "clusters": [static_cluster(c) for c in cases],
            "listeners": [listener(c) for c in cases],
        },
    }


def listener_ports(envoy: EnvoyProcess) -> dict[str, int]:
    """Listener name → the port Envoy bound."""
    statuses = json.loads(envoy.admin("/listeners?format=json"))["listener_statuses"]
    return {s["name"]: int(s["local_address"]["socket_address"]["port_value"]) for s in statuses}


def validate(cases: Iterable[Case], workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run `envoy --mode validate` on the cases' bootstrap; the completed process."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "validate.json"
    config.write_text(json.dumps(bootstrap(cases)))
    args = [find_binary("envoy"), "--mode", "validate", "-c", str(config), "-l", "error"]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


class Client:
    """Sequential HTTP/1.1 requests on one keep-alive connection to an Envoy listener."""

    def __init__(self, port: int, *, source_ip: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.port = port
        self._conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=timeout, source_address=(source_ip, 0)
        )

    def get(self, path: str = "/", headers: Mapping[str, str] | None = None) -> str:
        """One request; the answering backend's name, or without one `status:<code>` (plus
        `@<upstream address>` when the route reports it in `x-upstream`)."""
        self._conn.request("GET", path, headers=dict(headers or {}))
        response = self._conn.getresponse()
        response.read()
        name = response.getheader("x-backend")
        if name is not None:
            return name
        upstream = response.getheader("x-upstream")
        return f"status:{response.status}" + (f"@{upstream}" if upstream else "")

    def picks(self, count: int, path: str = "/") -> list[str]:
        """`count` identical requests in a row; the backend of each."""
        return [self.get(path) for _ in range(count)]

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def picks_from(port: int, count: int) -> list[str]:
    """`count` requests in a row to the listener on `port` (one connection); who answered each."""
    client = Client(port)
    try:
        return client.picks(count)
    finally:
        client.close()


def hashed_picks(port: int, keys: Iterable[str], header: str = "x-user") -> list[str]:
    """One request per key (in `header`) to the listener on `port`; who answered each."""
    client = Client(port)
    try:
        return [client.get("/", {header: key}) for key in keys]
    finally:
        client.close()


def counts(names: Iterable[object]) -> Counter[str]:
    """How many picks went to each name (`str()` of each pick)."""
    return Counter(str(n) for n in names)


@dataclass(frozen=True)
class Backends:
    """Running demo backends: their HTTP ports in order and each port's backend name."""

    ports: tuple[int, ...]
    names: dict[int, str]

    def name_of(self, host: object) -> str:
        """The backend name behind a reference-balancer host (`str(host)` is `ip:port`)."""
        return self.names[int(str(host).rpartition(":")[2])]


@dataclass(frozen=True)
class Deployment:
    """A running Envoy and the port of each case's listener (`deployment[case.name]`)."""

    envoy: EnvoyProcess
    ports: dict[str, int]

    def __getitem__(self, name: str) -> int:
        return self.ports[name]


EnvoyFactory = Callable[[Sequence[Case]], Deployment]
