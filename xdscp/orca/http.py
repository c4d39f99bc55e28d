"""ORCA for HTTP servers: an aiohttp middleware and an ASGI middleware.

Both count every request in a `LoadMeter` (a response of status 500 or above also as an error)
and add the `endpoint-load-metrics` header, in the format asked for, to every response. Paths
in `skip` (health checks, metrics scrapes) are neither counted nor reported on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web

from xdscp.orca.meter import LoadMeter
from xdscp.orca.wire import HEADER, HeaderFormat, header_value

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _answered(meter: LoadMeter, status: int, form: HeaderFormat) -> str:
    if status >= 500:
        meter.record_error()
    return header_value(meter.report(), form)


def aiohttp_middleware(
    meter: LoadMeter, form: HeaderFormat = HeaderFormat.TEXT, *, skip: frozenset[str] = frozenset()
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """A middleware for `web.Application(middlewares=[...])` reporting with every response."""

    @web.middleware
    async def report_load(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in skip:
            return await handler(request)
        meter.record()
        try:
            response = await handler(request)
        except web.HTTPException as answer:  # raised responses are answers too
            answer.headers[HEADER] = _answered(meter, answer.status, form)
            raise
        except Exception:
            meter.record_error()
            raise
        if not response.prepared:  # a streamed response already sent its headers
            response.headers[HEADER] = _answered(meter, response.status, form)
        return response

    return report_load


def asgi_middleware(
    app: AsgiApp,
    meter: LoadMeter,
    form: HeaderFormat = HeaderFormat.TEXT,
    *,
    skip: frozenset[str] = frozenset(),
) -> AsgiApp:
    """`app` reporting with every HTTP response (other scopes pass through untouched)."""

    async def reporting(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("path") in skip:
            await app(scope, receive, send)
            return
        meter.record()

        async def send_with_report(message: Message) -> None:
            if message.get("type") == "http.response.start":
                value = _answered(meter, int(message.get("status", 200)), form)
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER.encode()
                ]
                message = {
                    **message,
                    "headers": [*headers, (HEADER.encode(), value.encode("ascii"))],
                }
            await send(message)

        await app(scope, receive, send_with_report)

    return reporting
