"""`xdscp register` and `xdscp backend` as processes: a duplicate registrar is refused with one
line, a deregistered registrar stops, and SIGINT/SIGTERM end them at any step (etcd
unreachable or silent, registered, etcd gone, draining) with one line, a documented status
and no traceback. Signals are sent once the process said it reached the step (a line)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.harness.cli import Cli
from xdscp.etcd import EtcdClient
from xdscp.testing import free_port, wait_for, wait_until

pytestmark = pytest.mark.etcd
KEY = "/xdscp/services/web/127.0.0.1:8081"


def _event(name: str) -> Callable[[str], bool]:
    """Matches a JSON log line of event `name`."""

    def match(line: str) -> bool:
        try:
            return bool(json.loads(line).get("event") == name)
        except ValueError:
            return False

    return match


def _event_line(line: str) -> bool:
    """A JSON log line (any event)."""
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _starts(prefix: str) -> Callable[[str], bool]:
    return lambda line: line.startswith(prefix)


@pytest.mark.parametrize(
    ("fmt", "key", "undo"),
    [
        ([], KEY, "xdscp deregister web 127.0.0.1:8081"),
        (["--format", "grpc-go"], "web/127.0.0.1:8081", "--format grpc-go"),
    ],
    ids=["native", "grpc-go"],
)
async def test_a_duplicate_registration_is_refused_and_the_first_keeps_serving(
    etcd_server: EtcdServer, fmt: list[str], key: str, undo: str
) -> None:
    """The issue's scene: `register web 127.0.0.1:8081 --weight 5` while another registrar
    holds that endpoint. Refused: exit status 3, one line naming the key, the holder's lease
    and the command that removes it; the first registration is untouched (zone kept, weight
    1) and its registrar still runs and deregisters at SIGTERM."""
    url = etcd_server.url
    args = ["register", "web", "127.0.0.1:8081", *fmt, "--etcd", url]
    with Cli(*args, "--zone", "z1", "--ttl", "5") as first:
        line = await asyncio.to_thread(first.wait_line, first.stdout, _starts("registered "))
        lease = line.rsplit("(lease ", 1)[1].rstrip(")")
        async with EtcdClient(etcd_server.config()) as client:
            before = await client.get(key.encode())
            with Cli(*args, "--weight", "5") as second:
                assert await asyncio.to_thread(second.ended) == 3, second.output
                second.assert_no_traceback()
            errors = [line for line in second.stderr if not line.startswith("{")]
            assert len(errors) == 1, second.output
            assert errors[0].startswith(f"Error: {key} is already registered by another")
            assert f"lease {lease}" in errors[0]
            assert undo in errors[0]
            assert second.stdout == []
            assert await client.get(key.encode()) == before
        assert first.process.poll() is None
        first.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.ended) == 0, first.output
        assert first.stdout[-1] == f"deregistered {key}"


async def test_xdscp_deregister_stops_the_registrar_for_good(etcd_server: EtcdServer) -> None:
    """`xdscp deregister` while `xdscp register` runs: the registrar says so in one line and
    exits with status 0, and the key stays deleted (never written back)."""
    url = etcd_server.url
    with Cli("register", "web", "127.0.0.1:8081", "--ttl", "2", "--etcd", url) as registrar:
        await asyncio.to_thread(registrar.wait_line, registrar.stdout, _starts("registered "))
        with Cli("deregister", "web", "127.0.0.1:8081", "--etcd", url) as remover:
            assert await asyncio.to_thread(remover.ended) == 0, remover.output
        assert await asyncio.to_thread(registrar.ended) == 0, registrar.output
        registrar.assert_no_traceback()
        assert registrar.stdout[-1] == (
            f"{KEY} was deleted by someone else (xdscp deregister?) while registered:"
            " stopping without registering it again"
        )
        async with EtcdClient(etcd_server.config()) as client:
            assert await client.get(KEY.encode()) is None


@pytest.fixture
def silent_etcd() -> Iterator[str]:
    """An address that accepts TCP connections and never answers (a hung etcd): connecting
    stays in progress until the client gives up."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("where", ["closed", "silent"])
def test_the_first_signal_stops_a_registrar_waiting_for_etcd(
    sig: signal.Signals, where: str, request: pytest.FixtureRequest
) -> None:
    """etcd unreachable (a closed port) or silent (connecting forever): once the registrar
    retried, the first signal stops it with one line and status 0; nothing is registered."""
    url = (
        f"http://127.0.0.1:{free_port()}"
        if where == "closed"
        else request.getfixturevalue("silent_etcd")
    )
    with Cli("register", "web", "127.0.0.1:8081", "--etcd", url) as registrar:
        registrar.wait_line(registrar.stderr, _event("registration_retry"))
        registrar.process.send_signal(sig)
        assert registrar.ended() == 0, registrar.output
        registrar.assert_no_traceback()
        assert registrar.stdout == [
            f"stopped by {sig.name} before registering (etcd: {url}): nothing registered"
        ]


def _catches_sigterm(pid: int) -> bool:
    """True once the process has a handler for SIGTERM (its /proc status says so)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_sigterm_is_handled_from_the_first_instruction() -> None:
    """SIGTERM sent as soon as the process handles it (while it still imports): one line,
    no traceback, and the process ends by the signal (or, if the command already ran, with
    status 0) — never ignored."""
    with Cli("register", "web", "127.0.0.1:8081", "--etcd", f"http://127.0.0.1:{free_port()}") as r:
        wait_until(lambda: _catches_sigterm(r.process.pid))
        r.process.send_signal(signal.SIGTERM)
        status = r.ended()
        r.assert_no_traceback()
        lines = [line for line in r.stdout + r.stderr if not line.startswith("{")]
        assert len(lines) == 1, r.output
        if status == -signal.SIGTERM:
            assert lines == ["xdscp: stopped by SIGTERM"]
        else:
            assert status == 0, r.output
            assert lines[0].startswith("stopped by SIGTERM before registering")


@pytest.mark.slow
def test_timeout_8_ends_a_registrar_waiting_for_etcd() -> None:
    """`timeout 8 xdscp register ...` with etcd unreachable ends at the 8 s SIGTERM (status
    124 from timeout), not minutes later by SIGKILL, with one line: the registrar's, or —
    when a loaded machine took longer than 8 s to start it — the executable's own."""
    url = f"http://127.0.0.1:{free_port()}"
    with Cli("register", "web", "127.0.0.1:8081", "--etcd", url, prefix=["timeout", "8"]) as r:
        assert r.ended(limit=60) == 124, r.output
        r.assert_no_traceback()
        said = [*r.stdout, *(line for line in r.stderr if not _event_line(line))]
        assert said in (
            [f"stopped by SIGTERM before registering (etcd: {url}): nothing registered"],
            ["xdscp: stopped by SIGTERM"],  # before the registrar started
        ), r.output


def test_sigterm_while_etcd_is_gone_ends_with_one_line(etcd_server: EtcdServer) -> None:
    """Registered, then etcd dies: the keep-alive retries; SIGTERM ends the registrar within
    the request timeouts, with one line saying the key stays until its lease expires."""
    with Cli("register", "web", "127.0.0.1:8081", "--ttl", "5", "--etcd", etcd_server.url) as r:
        r.wait_line(r.stdout, _starts("registered "))
        etcd_server.kill()
        r.wait_line(r.stderr, _event("etcd_keepalive_failed"))
        r.process.send_signal(signal.SIGTERM)
        assert r.ended() == 1, r.output
        r.assert_no_traceback()
        errors = [line for line in r.stderr if line.startswith("Error: ")]
        assert len(errors) == 1, r.output
        assert errors[0].startswith(f"Error: could not deregister {KEY}")
        assert errors[0].endswith("it stays until its lease expires, within 5 s")


async def test_a_second_signal_cuts_the_drain_short(etcd_server: EtcdServer) -> None:
    """The first SIGINT starts a 30 s drain; the second revokes at once: status 0, one line."""
    args = ["register", "web", "127.0.0.1:8081", "--drain", "30", "--etcd", etcd_server.url]
    with Cli(*args) as r:
        await asyncio.to_thread(r.wait_line, r.stdout, _starts("registered "))
        r.process.send_signal(signal.SIGINT)
        await asyncio.to_thread(r.wait_line, r.stdout, _starts("draining "))
        r.process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(r.ended) == 0, r.output
        r.assert_no_traceback()
        assert r.stdout[-1] == f"deregistered {KEY} (drain cut short by SIGINT)"
    async with EtcdClient(etcd_server.config()) as client:
        assert await client.get(KEY.encode()) is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_backend_stops_at_the_first_signal(sig: signal.Signals) -> None:
    """`xdscp backend`: serving (its line printed), one signal ends it with one line and 0."""
    with Cli("backend", "--name", "b1") as backend:
        backend.wait_line(backend.stdout, _starts("backend b1: http "))
        backend.process.send_signal(sig)
        assert backend.ended() == 0, backend.output
        backend.assert_no_traceback()
        assert backend.stdout[-1] == f"backend b1 stopped by {sig.name}"


def test_backend_port_in_use_is_one_line() -> None:
    """A port already taken: one line naming it, status 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with Cli("backend", "--name", "b2", "--http-port", str(port)) as backend:
            assert backend.ended() == 1, backend.output
            backend.assert_no_traceback()
            errors = [line for line in backend.stderr if line.startswith("Error: ")]
            assert errors == [
                f"Error: backend b2: cannot listen on 127.0.0.1 (http {port}, grpc 0):"
                " [Errno 98] Address already in use"
            ]


def test_backend_grpc_port_in_use_is_one_line() -> None:
    """A gRPC port already taken fails too (gRPC's SO_REUSEPORT is off: two backends never
    share one port, as another gRPC server's SO_REUSEPORT socket would let it): one line
    naming it, status 1, no traceback."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with Cli("backend", "--name", "b3", "--http-port", "0", "--grpc-port", str(port)) as b:
            assert b.ended() == 1, b.output
            b.assert_no_traceback()
            errors = [line for line in b.stderr if line.startswith("Error: ")]
            assert len(errors) == 1, b.output
            assert errors[0].startswith(
                f"Error: backend b3: cannot listen on 127.0.0.1 (http 0, grpc {port}):"
            )


async def test_register_keeps_its_load_fresh_from_a_file(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    """`xdscp register --load-file F --load-interval 0.2`: the registration starts with the
    file's load, is written again stamped, follows the file when it changes, skips a bad
    reading (logged) without touching the registration, and deregisters at SIGTERM."""
    load = tmp_path / "load.json"
    load.write_text('{"utilization": 0.25, "rps": 40}')
    args = ["register", "web", "127.0.0.1:8081", "--load-file", str(load)]
    with Cli(*args, "--load-interval", "0.2", "--etcd", etcd_server.url) as registrar:
        await asyncio.to_thread(registrar.wait_line, registrar.stdout, _starts("registered "))
        async with EtcdClient(etcd_server.config()) as client:

            async def stored() -> dict[str, float]:
                kv = await client.get(KEY.encode())
                assert kv is not None
                found: dict[str, float] = json.loads(kv.value)["load"]
                return found

            first = await stored()
            assert (first["utilization"], first["rps"]) == (0.25, 40.0)

            async def restamped() -> bool:
                return (await stored())["at"] > first["at"]

            await wait_for(restamped, 10.0)
            load.write_text('{"utilization": 0.75}')

            async def followed() -> bool:
                return (await stored()).get("utilization") == 0.75

            await wait_for(followed, 10.0)
            load.write_text('{"utilization": NaN}')
            await asyncio.to_thread(
                registrar.wait_line, registrar.stderr, _event("registration_load_refused")
            )
            assert (await stored())["utilization"] == 0.75  # the last good load stays
        registrar.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(registrar.ended) == 0, registrar.output
        registrar.assert_no_traceback()
