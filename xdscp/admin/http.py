"""A small asyncio HTTP/1.1 server for operators (no framework: four read-only routes).

GET /healthz (the process answers), /readyz (200 once every source has published and a
snapshot exists, else 503 with the reason), /metrics (Prometheus text), /debug/nodes (JSON:
each connected node's subscriptions, sent and accepted versions, last NACK, connected since),
/debug/resources (every resource name and version per node group and type), /debug/health
(xdscp's own health checks: who checks, the verdicts applied, each endpoint's last check),
/status/snapshots (per-type versions per group). `/ready` and `/status/nodes` are aliases.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = structlog.get_logger(__name__)
Route = Callable[[], tuple[int, str, bytes]]


def _json(status: int, payload: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(payload, indent=2).encode() + b"\n"


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
        health: Callable[[], Any] = dict,
    ) -> None:
        self.host, self.port = host, port
        self._routes: dict[str, Route] = {
            "/healthz": lambda: _json(200, {"ok": True}),
            "/readyz": lambda: self._ready(readiness),
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/debug/nodes": lambda: _json(200, nodes()),
            "/debug/resources": lambda: _json(200, resources()),
            "/debug/health": lambda: _json(200, health()),
            "/status/snapshots": lambda: _json(200, snapshots()),
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
            path = rest.split(" ", 1)[0].split("?", 1)[0]
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
                status, ctype, body = route()
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
