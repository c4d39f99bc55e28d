"""Every address `xdscp serve` listens on, checked before anything starts.

A socket is bound to each address the way the servers will bind it (SO_REUSEADDR, never
SO_REUSEPORT) and closed again, so that a port in use, an address no interface of this host
has, or a name that does not resolve is one line naming the address and what to do, before
any port listens or any source connects.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass

from xdscp.errors import BindError
from xdscp.model import format_host_port

_WHY = {
    errno.EADDRINUSE: "the port is in use (another xdscp serve, or another program, listens"
    " there); stop it, or choose another port",
    errno.EADDRNOTAVAIL: "the host has no such address; use one of its own (127.0.0.1, or"
    " 0.0.0.0 for all)",
    errno.EACCES: "ports below 1024 need privileges; choose another port",
}


@dataclass(frozen=True, slots=True)
class Listen:
    """One address to listen on: `what` names it ("xDS"), `option` is how to change it."""

    what: str
    host: str
    port: int
    option: str

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)

    def error(self, why: str) -> BindError:
        """The one-line error for this address."""
        return BindError(
            f"cannot listen on the {self.what} address {self}: {why} with {self.option}"
        )


def _try_bind(family: int, address: tuple[object, ...]) -> int:
    """0 when `address` can be bound now, else the errno."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.errno or errno.EINVAL
    return 0


def check_listen(listen: Listen) -> None:
    """Raise `BindError` unless `listen` can be listened on now.

    Like the servers, a name that resolves to several addresses (localhost: 127.0.0.1 and
    ::1) is fine when one of them can be bound, unless another is in use.
    """
    try:
        infos = socket.getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise listen.error(f"the name does not resolve ({reason}); use an IP address") from None
    failures = [_try_bind(family, address) for family, _, _, _, address in infos]
    if errno.EADDRINUSE in failures:
        raise listen.error(_WHY[errno.EADDRINUSE])
    if all(failures):
        code = failures[0]
        raise listen.error(_WHY.get(code, f"{os.strerror(code)}; choose another address"))


def check_all(addresses: list[Listen]) -> None:
    """Check that no two of `addresses` are the same port, then each (`check_listen`)."""
    seen: dict[tuple[str, int], Listen] = {}
    for listen in addresses:
        key = (listen.host, listen.port)
        if listen.port and key in seen:
            why = f"the {seen[key].what} server is to listen there too; choose another port"
            raise listen.error(why)
        seen[key] = listen
    for listen in addresses:
        check_listen(listen)
