"""`HOST:PORT`, the one way every part of xdscp reads and writes an address.

`parse_host_port` reads `HOST:PORT`, or `[IPv6]:PORT` (the brackets are required around an
IPv6 literal: `::1:80` is ambiguous and refused); `format_host_port` writes the same form
back. The host is not resolved or checked further here: the caller knows whether it wants an
IP literal or a hostname (`check_ip`, the registry's host rules).
"""

from __future__ import annotations

import ipaddress

from xdscp.errors import ValidationError

MAX_PORT = 65535


def parse_host_port(
    text: object, *, field: str = "address", min_port: int = 1, default_port: int | None = None
) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT` -> (host, port), the host without brackets.

    `min_port` 0 lets port 0 through (listen on a free port); with `default_port`, the port
    may be left out (`HOST`, `[IPv6]`). Raises `ValidationError` naming `field`.
    """
    if not isinstance(text, str):
        raise ValidationError(field, f"expected HOST:PORT, got {text!r}")
    host, port = _split(text, field, default_port)
    if not host:
        raise ValidationError(field, f"expected HOST:PORT with a host, got {text!r}")
    if not port.isdecimal() or not port.isascii() or not min_port <= int(port) <= MAX_PORT:
        raise ValidationError(field, f"port must be in [{min_port}, {MAX_PORT}], got {text!r}")
    return host, int(port)


def _split(text: str, field: str, default_port: int | None) -> tuple[str, str]:
    """(host, port text); the host of a bracketed IPv6 literal checked and unbracketed."""
    if text.startswith("["):
        inside, close, rest = text[1:].partition("]")
        if not close:
            raise ValidationError(field, f"an opening '[' needs its ']', got {text!r}")
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise ValidationError(field, f"brackets are for IPv6 addresses, got {text!r}") from None
        if not rest and default_port is not None:
            return inside, str(default_port)
        if not rest.startswith(":"):
            raise ValidationError(field, f"expected [IPv6]:PORT, got {text!r}")
        return inside, rest[1:]
    host, sep, port = text.rpartition(":")
    if not sep:
        if default_port is None:
            raise ValidationError(field, f"expected HOST:PORT, got {text!r}")
        return text, str(default_port)
    if ":" in host:
        raise ValidationError(
            field, f"an IPv6 address must be in brackets ([::1]:PORT), got {text!r}"
        )
    return host, port


def format_host_port(host: str, port: int) -> str:
    """`HOST:PORT`, with an IPv6 literal in brackets (what `parse_host_port` reads back)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
