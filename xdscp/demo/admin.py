"""Reading the demo's state: xdscp's admin endpoint and Envoy's, as JSON, off the event loop."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
from typing import Any

from xdscp.errors import ProcessError


def get_body(port: int, path: str, method: str = "GET") -> bytes:
    """GET (or `method`) http://127.0.0.1:`port``path`: its body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.read()
    except OSError as exc:
        raise ProcessError(f"127.0.0.1:{port}{path} did not answer: {exc}") from None
    finally:
        conn.close()


def get_json(port: int, path: str, method: str = "GET") -> Any:
    """GET (or `method`) http://127.0.0.1:`port``path` and decode its JSON body."""
    return json.loads(get_body(port, path, method))


_PUSHES = re.compile(r'^xdscp_adaptive_weight_pushes_total\{service="([^"]*)"\} (\S+)$', re.M)


class AdminClient:
    """xdscp's admin port and Envoy's admin port."""

    def __init__(self, xdscp_port: int, envoy_port: int) -> None:
        self.xdscp_port = xdscp_port
        self.envoy_port = envoy_port

    def _state(self) -> tuple[Any, Any, Any]:
        return (
            get_json(self.xdscp_port, "/debug/resources"),
            get_json(self.xdscp_port, "/status/snapshots"),
            get_json(self.xdscp_port, "/debug/nodes"),
        )

    async def state(self) -> tuple[Any, Any, Any]:
        """xdscp's served resources (group → type → name → version), per-type snapshot
        versions (group → type → version) and connected nodes."""
        return await asyncio.to_thread(self._state)

    def _cluster_active(self, name: str, version: str) -> bool:
        dump = get_json(self.envoy_port, "/config_dump?resource=dynamic_warming_clusters")
        if dump.get("configs"):
            return False
        dump = get_json(self.envoy_port, "/config_dump?resource=dynamic_active_clusters")
        return any(
            c.get("cluster", {}).get("name") == name and c.get("version_info") == version
            for c in dump.get("configs", [])
        )

    async def envoy_cluster_active(self, name: str, version: str) -> bool:
        """True when Envoy's active cluster `name` came with CDS `version` and no cluster
        is still warming (its endpoints have arrived)."""
        return await asyncio.to_thread(self._cluster_active, name, version)

    def _hosts(self, name: str) -> set[str]:
        statuses = get_json(self.envoy_port, "/clusters?format=json").get("cluster_statuses", [])
        return {
            f"{address.get('address')}:{address.get('port_value')}"
            for cluster in statuses
            if cluster.get("name") == name
            for host in cluster.get("host_statuses", [])
            for address in [host.get("address", {}).get("socket_address", {})]
        }

    async def envoy_hosts(self, name: str) -> set[str]:
        """The endpoints (`ip:port`) Envoy's cluster `name` holds now, as its admin's
        /clusters lists them: what Envoy balances over, whatever xdscp says it sent."""
        return await asyncio.to_thread(self._hosts, name)

    def _weights(self, name: str) -> dict[str, int]:
        statuses = get_json(self.envoy_port, "/clusters?format=json").get("cluster_statuses", [])
        return {
            f"{address.get('address')}:{address.get('port_value')}": int(host.get("weight", 1))
            for cluster in statuses
            if cluster.get("name") == name
            for host in cluster.get("host_statuses", [])
            for address in [host.get("address", {}).get("socket_address", {})]
        }

    async def envoy_weights(self, name: str) -> dict[str, int]:
        """The weight Envoy's balancer gives each endpoint (`ip:port`) of cluster `name` now,
        per its admin's /clusters (client-side WRR: the weights its load reports made)."""
        return await asyncio.to_thread(self._weights, name)

    def _served_weights(self, name: str) -> dict[str, int] | None:
        document = get_json(self.xdscp_port, "/debug/weights")
        served = document.get("services", {}).get(name, {}).get("served")
        return None if served is None else {str(k): int(w) for k, w in served.items()}

    async def served_weights(self, name: str) -> dict[str, int] | None:
        """The weights xdscp serves service `name`'s endpoints (`ip:port` → weight), as its
        admin's /debug/weights says; None while xdscp computes none for it."""
        return await asyncio.to_thread(self._served_weights, name)

    def _adaptive_pushes(self, name: str) -> int:
        text = get_body(self.xdscp_port, "/metrics").decode()
        found = [float(v) for service, v in _PUSHES.findall(text) if service == name]
        return int(found[0]) if found else 0

    async def adaptive_pushes(self, name: str) -> int:
        """How many computed weightings of service `name` xdscp has pushed (its metric
        `xdscp_adaptive_weight_pushes_total`)."""
        return await asyncio.to_thread(self._adaptive_pushes, name)

    def _listener_ports(self) -> set[int]:
        statuses = get_json(self.envoy_port, "/listeners?format=json").get("listener_statuses", [])
        return {
            int(s["local_address"]["socket_address"]["port_value"])
            for s in statuses
            if "socket_address" in s.get("local_address", {})
        }

    async def envoy_listener_ports(self) -> set[int]:
        """The ports Envoy's active listeners are bound to."""
        return await asyncio.to_thread(self._listener_ports)

    def _stats(self, prefix: str) -> dict[str, int]:
        stats = get_json(self.envoy_port, f"/stats?format=json&filter=^{prefix}").get("stats", [])
        return {s["name"]: int(s["value"]) for s in stats if isinstance(s.get("value"), int)}

    async def envoy_stats(self, prefix: str) -> dict[str, int]:
        """Envoy's counters and gauges whose names start with `prefix`."""
        return await asyncio.to_thread(self._stats, prefix)

    def _host_flags(self, cluster: str, endpoint: str) -> set[str] | None:
        statuses = get_json(self.envoy_port, "/clusters?format=json").get("cluster_statuses", [])
        for status in statuses:
            if status.get("name") != cluster:
                continue
            for host in status.get("host_statuses", []):
                address = host.get("address", {}).get("socket_address", {})
                if f"{address.get('address')}:{address.get('port_value')}" == endpoint:
                    health = host.get("health_status", {})
                    return {k for k, v in health.items() if v is True}
        return None

    async def envoy_host_flags(self, cluster: str, endpoint: str) -> set[str] | None:
        """The health flags (`failed_outlier_check`, ...) Envoy's /clusters shows for one
        host of `cluster`; None when Envoy does not hold that host."""
        return await asyncio.to_thread(self._host_flags, cluster, endpoint)

    def _route_retries(self, cluster: str) -> int | None:
        dump = get_json(self.envoy_port, "/config_dump?resource=dynamic_route_configs")
        for config in dump.get("configs", []):
            for vhost in config.get("route_config", {}).get("virtual_hosts", []):
                for route in vhost.get("routes", []):
                    action = route.get("route", {})
                    if action.get("cluster") == cluster:
                        retry = action.get("retry_policy")
                        return None if retry is None else int(retry.get("num_retries", 1))
        return None

    async def envoy_route_retries(self, cluster: str) -> int | None:
        """The retries of Envoy's route to `cluster` as Envoy holds it (None: no retry policy)."""
        return await asyncio.to_thread(self._route_retries, cluster)


async def backend_control(port: int, action: str) -> Any:
    """Tell the demo backend on 127.0.0.1:`port` to `fail` / `recover` (POST), or read its
    `counts` (GET): its `/_demo/` paths."""
    method = "GET" if action == "counts" else "POST"
    return await asyncio.to_thread(get_json, port, f"/_demo/{action}", method)
