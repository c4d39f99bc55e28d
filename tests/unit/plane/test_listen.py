"""Every address the control plane listens on is checked before any listens, and a failure
leaves nothing listening (the servers' own bind failing after the check included)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from xdscp.errors import BindError
from xdscp.model import Endpoint, Service
from xdscp.plane import ServeOptions, ServerConfig, build_plane
from xdscp.server.listen import Listen, check_all, check_listen
from xdscp.sources.memory import MemorySource

WEB = {"web": Service("web", (Endpoint("10.0.0.1", 80),))}


@pytest.fixture
def held() -> Iterator[int]:
    """A loopback port a plain socket listens on (the way another program would)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _free(port: int) -> bool:
    """True when `port` can be listened on (nothing holds it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _one_line(error: BindError, *parts: str) -> None:
    text = str(error)
    assert "\n" not in text
    for part in parts:
        assert part in text, (part, text)


def test_a_port_in_use_names_the_address_and_the_option(held: int) -> None:
    """A port another program listens on: the address, "in use", and the flag to change."""
    with pytest.raises(BindError) as caught:
        check_listen(Listen("admin", "127.0.0.1", held, "--admin"))
    _one_line(caught.value, f"127.0.0.1:{held}", "in use", "--admin")


def test_an_address_of_another_host_is_refused_before_binding() -> None:
    """An address no interface of this host has (only bound, never sent to)."""
    with pytest.raises(BindError) as caught:
        check_listen(Listen("xDS", "10.255.255.1", 0, "--xds"))
    _one_line(caught.value, "10.255.255.1:0", "no such address", "--xds")


def test_a_name_that_does_not_resolve_is_one_line() -> None:
    """A host name that does not resolve (`.invalid` never does)."""
    with pytest.raises(BindError) as caught:
        check_listen(Listen("xDS", "no-such-host.invalid", 18000, "--xds"))
    _one_line(caught.value, "no-such-host.invalid:18000", "does not resolve", "--xds")


def test_the_same_port_twice_is_refused() -> None:
    """xDS and admin on one port: refused before either listens."""
    with pytest.raises(BindError) as caught:
        check_all(
            [
                Listen("xDS", "127.0.0.1", 1234, "--xds"),
                Listen("admin", "127.0.0.1", 1234, "--admin"),
            ]
        )
    _one_line(caught.value, "admin address 127.0.0.1:1234", "xDS server", "--admin")


def test_free_and_ephemeral_addresses_pass() -> None:
    """Port 0 (any), a free port and localhost's addresses are fine."""
    check_all([Listen("xDS", "127.0.0.1", 0, "--xds"), Listen("admin", "localhost", 0, "--admin")])


async def test_admin_port_in_use_leaves_the_xds_port_free(
    held: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin bind failing after the xDS port was bound (taken since the check): the
    xDS server's socket is closed again and the error names the admin address."""
    xds_port = _port()
    monkeypatch.setattr("xdscp.plane.control.check_all", lambda _: None)
    options = ServeOptions(xds_host="127.0.0.1", xds_port=xds_port, admin_port=held)
    plane = build_plane(ServerConfig(serve=options), sources=[MemorySource(WEB)])
    with pytest.raises(BindError) as caught:
        await plane.start()
    _one_line(caught.value, f"127.0.0.1:{held}", "in use", "--admin")
    assert _free(xds_port)
    await plane.stop()


async def test_xds_port_taken_after_the_check(held: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """grpc's own bind failing ("Failed to bind") is the same one line, and the admin
    server never started."""
    admin_port = _port()
    monkeypatch.setattr("xdscp.plane.control.check_all", lambda _: None)
    options = ServeOptions(xds_host="127.0.0.1", xds_port=held, admin_port=admin_port)
    plane = build_plane(ServerConfig(serve=options), sources=[MemorySource(WEB)])
    with pytest.raises(BindError) as caught:
        await plane.start()
    _one_line(caught.value, f"127.0.0.1:{held}", "in use", "--xds")
    assert _free(admin_port)
    await plane.stop()


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
