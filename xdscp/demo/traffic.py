"""The demo's traffic: which requests to send for a policy, and sending them through Envoy.

Requests are sequential (each ends before the next starts), on one keep-alive connection per
client address, so the reference balancer can replay them exactly. For hash policies every
request carries its own hash input: a distinct `x-user` header value, or (source-IP hash) one
of several 127.x loopback source addresses, so the split over backends means something.
"""

from __future__ import annotations

import http.client
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from xdscp.model import BalancingPolicy, HashInput

USER_HEADER = "x-user"
MAX_SOURCE_ADDRESSES = 64


@dataclass(frozen=True, slots=True)
class Request:
    """One request: its extra headers and the client address it is sent from."""

    headers: Mapping[str, str] = field(default_factory=dict)
    source_ip: str = "127.0.0.1"


def source_address(index: int) -> str:
    """The `index`-th client address: 127.0.1.1, 127.0.1.2, ... (all loopback on Linux)."""
    return str(ipaddress.IPv4Address(0x7F000101 + index))


def plan(policy: BalancingPolicy, count: int) -> list[Request]:
    """`count` requests that exercise `policy`: distinct header values or source addresses
    for hash policies, plain requests otherwise."""
    sources = {h.source for h in policy.hash_on}
    if HashInput.SOURCE_IP in sources:
        addresses = max(1, min(MAX_SOURCE_ADDRESSES, count // 10))
        return [Request(source_ip=source_address(i * addresses // count)) for i in range(count)]
    if HashInput.HEADER in sources:
        names = [h.name for h in policy.hash_on if h.source is HashInput.HEADER]
        return [Request(dict.fromkeys(names, f"user-{i}")) for i in range(count)]
    return [Request() for _ in range(count)]


class _Connection:
    """A keep-alive HTTP/1.1 connection to Envoy from one source address."""

    def __init__(self, port: int, source_ip: str) -> None:
        self._port, self.source_ip = port, source_ip
        self._conn = self._open()

    def _open(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            "127.0.0.1", self._port, timeout=10, source_address=(self.source_ip, 0)
        )

    def _get(self, host: str, headers: Mapping[str, str]) -> tuple[int, str | None]:
        self._conn.request("GET", "/", headers={"Host": host, **headers})
        response = self._conn.getresponse()
        response.read()
        return response.status, response.getheader("x-backend")

    def exchange(self, host: str, headers: Mapping[str, str]) -> tuple[int, str | None]:
        """One GET; its status and the answering backend's name (None without one). A
        connection Envoy closed in between is reopened once."""
        try:
            return self._get(host, headers)
        except (http.client.RemoteDisconnected, ConnectionError):
            self._conn.close()
            self._conn = self._open()
            return self._get(host, headers)

    def get(self, host: str, headers: Mapping[str, str]) -> str:
        """One GET; the answering backend's name, or `status:<code>` without one."""
        status, backend = self.exchange(host, headers)
        return backend or f"status:{status}"

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def send_plain(port: int, host: str, count: int) -> list[tuple[int, str | None]]:
    """`count` plain GETs in order on one connection: each one's status and backend name
    (a failing backend names itself on its error answers too)."""
    conn = _Connection(port, "127.0.0.1")
    try:
        return [conn.exchange(host, {}) for _ in range(count)]
    finally:
        conn.close()


def send(port: int, host: str, requests: Sequence[Request]) -> list[str]:
    """Send `requests` in order to Envoy's listener on 127.0.0.1:`port` with `Host: host`;
    the backend (or `status:<code>`) that answered each."""
    answers: list[str] = []
    conn: _Connection | None = None
    try:
        for request in requests:
            if conn is None or conn.source_ip != request.source_ip:
                if conn is not None:
                    conn.close()
                conn = _Connection(port, request.source_ip)
            answers.append(conn.get(host, request.headers))
    finally:
        if conn is not None:
            conn.close()
    return answers
