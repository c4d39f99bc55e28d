"""`free_port` never hands out one port twice in a process, even when the kernel offers it
again before the child it was meant for has bound it."""

from __future__ import annotations

import socket
from unittest import mock

from xdscp.procs import etcd


def test_ports_are_distinct_across_many_calls() -> None:
    ports = [etcd.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)


def test_a_port_offered_again_is_skipped() -> None:
    """The kernel offers the same port twice (nothing bound it yet): the second call waits
    for another."""
    first = etcd.free_port()
    offered = iter([first, first, first + 1 if first < 65535 else first - 1])
    real = socket.socket

    class Offering(real):  # type: ignore[misc, valid-type]
        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", next(offered))

    with mock.patch.object(etcd.socket, "socket", Offering):
        second = etcd.free_port()
    assert second != first
