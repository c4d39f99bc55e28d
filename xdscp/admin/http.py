"""A small asyncio HTTP/1.1 server for operators (no framework: four read-only routes).

GET /healthz (the process answers), /readyz (200 once every source has published and a
snapshot exists, else 503 with the reason), /metrics (Prometheus text), /debug/nodes (JSON:
each connected node's subscriptions, sent and accepted versions, last NACK, connected since),
/debug/resources (every resource name and version per node group and type),
/status/snapshots (per-type versions per group), /debug/config_dump?node=ID[&type=Cluster]
(what one node was sent and accepted, per resource, decoded; 404 for a node not connected),
/debug/nacks[?node=ID] (the NACK history). `/ready` and `/status/nodes` are aliases.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = structlog.get_logger(__name__)
Route = Callable[[Mapping[str, str]], tuple[int, str, bytes]]  # query → (status, type, body)


def _json(status: int, payload: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(payload, indent=2).encode() + b"\n"


def _dump(
    config_dump: Callable[[str, str], Any], query: Mapping[str, str]
) -> tuple[int, str, bytes]:
    node = query.get("node", "")
    if not node:
        return _json(400, {"error": "name the node: /debug/config_dump?node=ID[&type=Cluster]"})
    dump = config_dump(node, query.get("type", ""))
    if dump is None:
        return _json(404, {"error": f"no connected node {node!r}"})
    return _json(200, dump)


class AdminServer:
    """Serves the admin routes on `host:port` (port 0 picks one; see `.port`)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry,
        readiness: Callable[[], tuple[bool, str]],
        nodes: Callable[[], Any],
        snapshots: Callable[[], Any],
        resources: Callable[[], Any],
        config_dump: Callable[[str, str], Any],
        nacks: Callable[[str | None], Any],
    ) -> None:
        self.host, self.port = host, port
        self._routes: dict[str, Route] = {
            "/healthz": lambda _: _json(200, {"ok": True}),
            "/readyz": lambda _: self._ready(readiness),
            "/metrics": lambda _: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/debug/nodes": lambda _: _json(200, nodes()),
            "/debug/resources": lambda _: _json(200, resources()),
            "/debug/config_dump": lambda q: _dump(config_dump, q),
            "/debug/nacks": lambda q: _json(200, nacks(q.get("node"))),
            "/status/snapshots": lambda _: _json(200, snapshots()),
        }
        # Short names kept for scripts written against earlier builds.
        self._routes["/ready"] = self._routes["/readyz"]
        self._routes["/status/nodes"] = self._routes["/debug/nodes"]
        self._server: asyncio.Server | None = None

    @staticmethod
    def _ready(readiness: Callable[[], tuple[bool, str]]) -> tuple[int, str, bytes]:
        ready, reason = readiness()
        return _json(200 if ready else 503, {"ready": ready, "reason": reason})

    async def start(self) -> None:
        """Listen; `.port` holds the bound port afterwards."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("admin_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            method, _, rest = line.decode("latin-1").partition(" ")
            path, _, query = rest.split(" ", 1)[0].partition("?")
            route = self._routes.get(path)
            if method != "GET":
                status, ctype, body = 405, "text/plain", b"only GET\n"
            elif route is None:
                status, ctype, body = (
                    404,
                    "text/plain",
                    ("routes: " + " ".join(self._routes) + "\n").encode(),
                )
            else:
                status, ctype, body = route(dict(urllib.parse.parse_qsl(query)))
            head = (
                f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
