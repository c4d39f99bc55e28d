"""The admin JSON API, read by `xdscp status`, `config` and `nacks`: every failure is one line.

What answered decides the line: nothing (refused, no answer in time), gRPC (an HTTP/2
SETTINGS frame where an HTTP/1.1 status line belongs: the xDS port), TLS, or an HTTP server
that is not xdscp's admin API; each says which flag and port to use instead.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click

from xdscp.errors import ValidationError
from xdscp.model import parse_host_port

DEFAULT_ADMIN = "127.0.0.1:18001"
TIMEOUT_S = 5.0
_USE = (
    f"give xdscp's admin address with --admin HOST:PORT (serve's --admin, default {DEFAULT_ADMIN})"
)
_SHOWN = 10  # connected nodes named in a "no such node" error


class AdminError(click.ClickException):
    """The admin API could not be read: one line, exit status 1."""


def admin_get(admin: str, path: str, **query: str) -> Any:
    """GET one admin JSON route; an `AdminError` saying what answered instead."""
    try:
        parse_host_port(admin, field="--admin")
    except ValidationError as exc:
        raise AdminError(f"{exc}; {_USE}") from None
    url = f"http://{admin}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - http://
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise AdminError(_http_error(admin, url, exc)) from None
    except http.client.RemoteDisconnected:
        raise AdminError(_not_http(admin, "")) from None
    except http.client.BadStatusLine as exc:
        raise AdminError(_not_http(admin, str(exc.args[0]) if exc.args else "")) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise AdminError(_unreachable(admin, exc)) from None
    try:
        return json.loads(body)
    except ValueError:
        message = f"{admin} answered {path} with something other than JSON: {_USE}"
        raise AdminError(message) from None


def _not_http(admin: str, line: str) -> str:
    """The first line read was no HTTP status line: say what it was."""
    if len(line) >= 9 and line[3] == "\x04":  # a frame header of type SETTINGS: HTTP/2
        return (
            f"{admin} answered with gRPC (HTTP/2), not the admin HTTP API: that is xdscp's"
            f" xDS port (serve's --xds); {_USE}"
        )
    if line[:2] in ("\x15\x03", "\x16\x03"):  # a TLS record
        return f"{admin} answered with TLS, not the admin HTTP API (plain HTTP); {_USE}"
    if not line.strip():
        return f"{admin} closed the connection without an HTTP answer; {_USE}"
    return f"{admin} did not answer in HTTP ({line[:20]!r}...); {_USE}"


def _unreachable(admin: str, exc: Exception) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ConnectionRefusedError):
        refused = f"nothing listens on {admin} (connection refused)"
        return f"{refused}: is `xdscp serve` running there? {_USE}"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"no answer from {admin} within {TIMEOUT_S:g} s; {_USE}"
    if isinstance(reason, ValueError):
        return f"{admin!r} is not a HOST:PORT address; {_USE}"
    return f"cannot reach {admin}: {reason}; {_USE}"


def _http_error(admin: str, url: str, exc: urllib.error.HTTPError) -> str:
    """xdscp's own JSON error (`{"error": ...}`), or: this is another HTTP server."""
    try:
        detail = json.loads(exc.read() or b"{}").get("error")
    except (ValueError, AttributeError, OSError):
        detail = None
    if isinstance(detail, str):
        return f"{url}: {detail}"
    return f"{admin} answered HTTP {exc.code} {exc.reason}: not xdscp's admin API? {_USE}"


def no_such_node(admin: str, node: str) -> AdminError:
    """`node` is not connected: say so, naming the nodes that are (a few)."""
    nodes = sorted({str(n.get("node")) for n in admin_get(admin, "/debug/nodes")})
    if not nodes:
        return AdminError(f"no node {node!r}: no node is connected to xdscp at {admin}")
    more = f" (and {len(nodes) - _SHOWN} more)" if len(nodes) > _SHOWN else ""
    shown = ", ".join(nodes[:_SHOWN]) + more
    return AdminError(f"no node {node!r} is connected; connected: {shown}")


def connected(admin: str, node: str) -> bool:
    """True when a node with this id has a stream open now."""
    return any(n.get("node") == node for n in admin_get(admin, "/debug/nodes"))
