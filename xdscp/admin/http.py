"""The admin HTTP server: health, metrics, per-node status, the JSON API and the dashboard.

Built on aiohttp's web server. Why aiohttp: it is asyncio-native, so it runs in `xdscp
serve`'s own event loop beside grpc.aio (no second loop, no thread, no ASGI server process to
manage); its `StreamResponse` is all Server-Sent Events need; and it is one well-kept
dependency with HTTP/1.1 keep-alive, HEAD, proper status lines and static files built in
(Starlette would need uvicorn as well, and runs its own server loop).

Routes (GET and HEAD; anything else is 405, an unknown path 404, both with a JSON body):

    /                     the dashboard (static files under /static/, shipped in the package)
    /healthz              200 {"ok": true} while the process answers
    /readyz, /ready       200 once every source has published and a snapshot exists, else 503;
                          the body's `status` is `ok`, `degraded` (a source lost its backend:
                          its last known services are served; `reason` names it and since
                          when) or `not_ready`, with every source's state
    /metrics              Prometheus text
    /debug/nodes          every connected node: subscriptions, versions, in-sync, NACKs
    /status/nodes         the same
    /debug/resources      every resource name and version per node group and type
    /status/snapshots     per-type versions per node group
    /debug/config_dump    ?node=ID[&type=Cluster]: what one node was sent and accepted, decoded
                          (400 without a node, 404 for a node not connected)
    /debug/nacks          [?node=ID]: the NACK history of every connected node (or one)
    /debug/health         xdscp's own health checks: who checks, the verdicts, the last checks
    /api                  this list of routes
    /api/services         every service: policy, source, endpoints
    /api/sources          every source: ok, starting or degraded (since when, why)
    /api/nodes            the same as /debug/nodes
    /api/predict          the reference balancer's predicted split (`xdscp.admin.query`)
    /api/events           Server-Sent Events: `services`, `nodes` and `sources`, each with
                          its JSON (as /api/services, /api/nodes, /api/sources), at connect
                          and on every change; `failed` (the topic and error) when one cannot
                          be encoded, so the page says so instead of showing stale data

Handlers are thin: the data comes from the plane (`AdminView`) as model objects and plain
values, written by the one encoder (`xdscp.admin.encode`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from xdscp.admin.encode import dumps
from xdscp.admin.events import NODES, SERVICES, TOPICS, ChangeFeed
from xdscp.admin.query import PredictQuery, parse_predict_query
from xdscp.errors import BalancerError, ValidationError

log = structlog.get_logger(__name__)

STATIC = Path(__file__).parent / "static"
KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies from closing an idle stream
MIN_EVENT_INTERVAL_S = 0.1  # at most ten event batches a second per stream; bursts coalesce
SHUTDOWN_TIMEOUT_S = 1.0
SECURITY_HEADERS = {
    # Everything the dashboard loads comes from this server: no CDN, no inline script.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminView(Protocol):
    """What the admin server asks of the plane: plain values and model objects (see
    `xdscp.admin.encode`)."""

    def readiness(self) -> tuple[bool, str]:
        """(ready, the reason when not)."""

    def sources_status(self) -> list[dict[str, Any]]:
        """Every source's state (`ok`, `starting`, `degraded`), since when and why."""

    def nodes_status(self) -> list[dict[str, Any]]:
        """Every connected node."""

    def snapshots_status(self) -> dict[str, Any]:
        """Per-type versions per node group."""

    def resources_status(self) -> dict[str, Any]:
        """Every resource name and version per node group and type."""

    def services_view(self) -> list[dict[str, Any]]:
        """Every served service with its policy, source and endpoints."""

    def predict(self, query: PredictQuery) -> dict[str, Any] | None:
        """The predicted split (and one request's endpoint); None: no such service."""

    def config_dump(self, node_id: str, type_name: str = "") -> dict[str, Any] | None:
        """What one node was sent and accepted, decoded; None: no such node connected."""

    def nack_history(self, node_id: str | None = None) -> list[dict[str, str]]:
        """The NACK history of every connected node (or one), oldest first."""

    def health_status(self) -> dict[str, Any]:
        """xdscp's own health checks: who checks, the verdicts applied, the last checks."""

    def weights_status(self) -> dict[str, Any]:
        """The adaptive services' weights: served, decided here, who publishes."""


def _json(payload: Any, status: int = 200, *, compact: bool = False) -> web.Response:
    """Indented for people reading /debug and /status; compact (C encoder, ~10x faster) for
    the /api routes the dashboard reads."""
    encode = dumps if compact else functools.partial(dumps, indent=2)
    return web.json_response(payload, status=status, dumps=encode)


def readiness_body(ready: bool, reason: str, sources: list[dict[str, Any]]) -> dict[str, Any]:
    """`/readyz`'s answer. Ready stays ready while a source is degraded (its last known
    services are served; a 503 from every replica at once would take them all out of a load
    balancer), but `status` says `degraded` and `reason` names the source and since when."""
    degraded = [s for s in sources if s["state"] == "degraded"]
    if ready and degraded:
        reason = "; ".join(
            f"{s['source']} degraded since {s['since']} ({s['error']}): serving its last"
            " known services"
            for s in degraded
        )
    status = "not_ready" if not ready else "degraded" if degraded else "ok"
    return {"ready": ready, "status": status, "reason": reason, "sources": sources}


class AdminServer:
    """Serves the admin routes on `host:port` (port 0 picks one; see `.port`)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        metrics_registry: CollectorRegistry,
        view: AdminView,
        feed: ChangeFeed,
    ) -> None:
        self.host, self.port = host, port
        self._metrics_registry, self._view, self._feed = metrics_registry, view, feed
        self._runner: web.AppRunner | None = None
        self._encoded: dict[str, tuple[int, str]] = {}  # topic -> (revision, its JSON)
        self.app = web.Application(middlewares=[self._errors])
        self.routes = self._add_routes()

    def _add_routes(self) -> list[str]:
        view = self._view
        table: dict[str, Handler] = {
            "/": self._index,
            "/healthz": self._const({"ok": True}),
            "/readyz": self._ready,
            "/ready": self._ready,
            "/metrics": self._metrics,
            "/debug/nodes": self._data(view.nodes_status),
            "/status/nodes": self._data(view.nodes_status),
            "/debug/resources": self._data(view.resources_status),
            "/status/snapshots": self._data(view.snapshots_status),
            "/debug/config_dump": self._config_dump,
            "/debug/nacks": self._nacks,
            "/debug/health": self._data(view.health_status),
            "/debug/weights": self._data(view.weights_status),
            "/api": self._api_index,
            "/api/services": self._data(self._services, compact=True),
            "/api/sources": self._data(self._sources, compact=True),
            "/api/nodes": self._data(view.nodes_status, compact=True),
            "/api/predict": self._predict,
            "/api/events": self._events,
        }
        for path, handler in table.items():
            self.app.router.add_get(path, handler)  # HEAD too (allow_head)
        self.app.router.add_static("/static/", STATIC)
        return [*table, "/static/"]

    def _services(self) -> dict[str, Any]:
        return {"services": self._view.services_view()}

    def _sources(self) -> dict[str, Any]:
        return {"sources": self._view.sources_status()}

    @staticmethod
    def _const(payload: Any) -> Handler:
        async def handler(_: web.Request) -> web.StreamResponse:
            return _json(payload)

        return handler

    @staticmethod
    def _data(source: Callable[[], Any], *, compact: bool = False) -> Handler:
        async def handler(_: web.Request) -> web.StreamResponse:
            return _json(source(), compact=compact)

        return handler

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """404 / 405 / 400 as JSON; a handler's bug is a 500, logged, never the process."""
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            return _json({"error": f"no route {request.path}", "routes": self.routes}, 404)
        except web.HTTPMethodNotAllowed as exc:
            body = {"error": f"method {request.method} not allowed", "allowed": ["GET", "HEAD"]}
            response = _json(body, 405)
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            return response
        except ValidationError as exc:
            return _json({"error": str(exc), "parameter": exc.field}, 400)
        except BalancerError as exc:  # the client would reject this configuration
            return _json({"error": str(exc)}, 422)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("admin_request_failed", path=request.path)
            return _json({"error": "internal error (logged)"}, 500)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    async def _index(self, _: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _ready(self, _: web.Request) -> web.StreamResponse:
        ready, reason = self._view.readiness()
        body = readiness_body(ready, reason, self._view.sources_status())
        return _json(body, 200 if ready else 503)

    async def _metrics(self, _: web.Request) -> web.StreamResponse:
        response = web.Response(body=generate_latest(self._metrics_registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _api_index(self, _: web.Request) -> web.StreamResponse:
        return _json({"routes": self.routes})

    async def _config_dump(self, request: web.Request) -> web.StreamResponse:
        node = request.query.get("node", "")
        if not node:
            error = "name the node: /debug/config_dump?node=ID[&type=Cluster]"
            return _json({"error": error, "parameter": "node"}, 400)
        dump = self._view.config_dump(node, request.query.get("type", ""))
        if dump is None:
            return _json({"error": f"no connected node {node!r}", "parameter": "node"}, 404)
        return _json(dump)

    async def _nacks(self, request: web.Request) -> web.StreamResponse:
        return _json(self._view.nack_history(request.query.get("node")))

    async def _predict(self, request: web.Request) -> web.StreamResponse:
        params = {key: request.query.getall(key) for key in request.query}
        query = parse_predict_query(params)
        # A first prediction can take a few hundred ms (a Maglev table, 10k picks): off the
        # event loop, so xDS streams keep being served meanwhile.
        result = await asyncio.to_thread(self._view.predict, query)
        if result is None:
            return _json({"error": f"no service {query.service!r}", "parameter": "service"}, 404)
        return _json(result, compact=True)

    def _event_data(self, topic: str, revision: int) -> str:
        """One topic's JSON at `revision`, encoded once for every open event stream."""
        cached = self._encoded.get(topic)
        if cached is None or cached[0] != revision:
            payloads = {SERVICES: self._services, NODES: self._view.nodes_status}
            payload = payloads.get(topic, self._sources)()  # SOURCES
            cached = self._encoded[topic] = (revision, dumps(payload))
        return cached[1]

    def _event(self, topic: str, revision: int) -> str:
        """One event: the topic's JSON, or `failed` naming the topic when it cannot be made
        (logged; the stream goes on, and the page shows the failure, not stale data)."""
        try:
            data = self._event_data(topic, revision)
        except Exception:
            log.exception("admin_event_failed", topic=topic)
            failure = dumps({"topic": topic, "error": "internal error (logged)"})
            return f"event: failed\ndata: {failure}\n\n"
        return f"event: {topic}\nid: {revision}\ndata: {data}\n\n"

    async def _send(self, response: web.StreamResponse, topics: Iterable[str]) -> None:
        revisions = self._feed.revisions()
        for topic in topics:
            await response.write(self._event(topic, revisions[topic]).encode())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: every topic at connect, then each topic that changes."""
        headers = {"Content-Type": "text/event-stream", **SECURITY_HEADERS}
        if request.method == "HEAD":
            return web.Response(headers=headers)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        try:
            await self._stream(response)
        except ConnectionResetError:  # the browser went away
            log.debug("admin_events_closed", peer=request.remote)
        return response

    async def _stream(self, response: web.StreamResponse) -> None:
        seen = self._feed.revisions()
        await self._send(response, TOPICS)
        while not self._feed.closed:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    topics = await self._feed.changed(seen)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            seen = self._feed.revisions()
            await self._send(response, topics)
            await asyncio.sleep(MIN_EVENT_INTERVAL_S)

    async def start(self) -> None:
        """Listen; `.port` holds the bound port afterwards."""
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()  # a failed bind leaves nothing set up behind it
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("admin_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop listening; open event streams end."""
        self._feed.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
