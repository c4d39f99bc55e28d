"""Registration: the Python API and the `register`/`deregister`/`list`/`policy` commands."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tests.fixtures.etcd import EtcdServer
from tests.fixtures.etcd_backends import EtcdBackend
from tests.harness.cli import cli
from xdscp.etcd import EtcdClient
from xdscp.model import LbPolicy, Locality
from xdscp.registry.registration import Format, Placement, build_registration, register
from xdscp.sources.etcd import EtcdRegistrySource
from xdscp.testing import Recorder, running, wait_for

pytestmark = pytest.mark.etcd


async def test_context_manager_registers_keeps_alive_and_revokes(etcd_server: EtcdServer) -> None:
    """The key exists (on a lease) inside the block, outlives its TTL, and is gone after."""
    registration = build_registration(
        "api", "10.0.0.5", 8080, weight=4, locality=Locality("eu", "eu-1a")
    )
    async with EtcdClient(etcd_server.config()) as client:
        source, recorder = EtcdRegistrySource(client, min_interval=0.0), Recorder()
        async with running(source, recorder):
            async with register(client, registration, ttl=2) as done:
                assert done.key == "/xdscp/services/api/10.0.0.5:8080"
                await wait_for(lambda: recorder.last == {"api": ["10.0.0.5:8080"]})
                await asyncio.sleep(3.0)  # longer than the TTL: keep-alive works
                kv = await client.get(done.key.encode())
                assert kv is not None
                assert kv.lease == done.lease_id
                endpoint = recorder.sets[-1]["api"].endpoints[0]
                assert (endpoint.weight, endpoint.locality.zone) == (4, "eu-1a")
            await wait_for(lambda: recorder.last == {})
        assert await client.get(done.key.encode()) is None


async def test_grpc_go_placement_writes_the_go_format(etcd_backend: EtcdBackend) -> None:
    """`--format grpc-go` writes `<target>/<id>` with the Go Manager's JSON."""
    registration = build_registration("greeter", "127.0.0.1", 50051, endpoint_id="a")
    async with (
        EtcdClient(etcd_backend.config()) as client,
        register(client, registration, Placement(Format.GRPC_GO), ttl=5) as done,
    ):
        kv = await client.get(b"greeter/a")
        assert kv is not None
        assert kv.value == b'{"Op":0,"Addr":"127.0.0.1:50051","Metadata":null}'
        assert done.key == "greeter/a"


def test_cli_register_prints_and_revokes_on_sigterm(etcd_server: EtcdServer) -> None:
    """`xdscp register` prints the key, keeps it, and deletes it at SIGTERM."""
    proc = _registrar(etcd_server, "api", "10.0.0.9:81", "--ttl", "5", "--metadata", "v=2")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("registered /xdscp/services/api/10.0.0.9:81 = ")
        result = CliRunner().invoke(cli(), ["list", "api", "--etcd", etcd_server.url])
        assert result.exit_code == 0, result.output
        assert "10.0.0.9:81" in result.output
        assert "v=2" in result.output
        lease = line.rsplit("(lease ", 1)[1].rstrip(")\n")
        row = next(r for r in result.output.splitlines() if "10.0.0.9:81" in r)
        assert lease in row  # the lease carrying the key, and its seconds left
        assert re.search(r"\b[1-5] s\b", row), row
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 5
    while "10.0.0.9:81" in CliRunner().invoke(cli(), ["list", "--etcd", etcd_server.url]).output:
        assert time.monotonic() < deadline


def test_cli_policy_set_show_and_validation(etcd_server: EtcdServer) -> None:
    """`policy set` stores a validated policy that `policy show` and the registry read back."""
    runner, url = CliRunner(), etcd_server.url
    result = runner.invoke(
        cli(),
        ["policy", "set", "api", "--lb", "maglev", "--hash-on", "header:x-user", "--etcd", url],
    )
    assert result.exit_code == 0, result.output
    shown = runner.invoke(cli(), ["policy", "show", "api", "--etcd", url])
    data = json.loads(shown.output)
    assert data["stored"] is True
    assert data["policy"]["lb"] == LbPolicy.MAGLEV.value
    assert data["policy"]["hash_on"] == ["header:x-user"]
    bad = runner.invoke(
        cli(),
        ["policy", "set", "api", "--lb", "round_robin", "--hash-on", "header:x", "--etcd", url],
    )
    assert bad.exit_code != 0
    assert "hash_on" in bad.output


def test_cli_deregister_and_bad_input(etcd_server: EtcdServer) -> None:
    """`deregister` deletes a key and fails for an unknown one; bad flags are refused."""
    runner, url = CliRunner(), etcd_server.url

    async def seed() -> None:
        async with EtcdClient(etcd_server.config()) as client:
            await client.put(b"/xdscp/services/api/x", b'{"address":"10.0.0.1","port":80}')

    asyncio.run(seed())
    assert runner.invoke(cli(), ["deregister", "api", "x", "--etcd", url]).exit_code == 0
    again = runner.invoke(cli(), ["deregister", "api", "x", "--etcd", url])
    assert again.exit_code != 0
    assert "not registered" in again.output
    bad = runner.invoke(cli(), ["register", "api", "10.0.0.1:0", "--etcd", url])
    assert bad.exit_code != 0
    assert "port" in bad.output


async def test_a_lost_lease_is_replaced_and_the_key_written_again(
    etcd_backend: EtcdBackend,
) -> None:
    """If the lease disappears (revoked, or expired in a long outage) the registrar re-registers."""
    registration = build_registration("api", "10.0.0.6", 80)
    async with (
        EtcdClient(etcd_backend.config()) as client,
        register(client, registration, ttl=2) as done,
    ):
        first = done.lease_id
        await client.lease_revoke(first)
        assert await client.get(done.key.encode()) is None

        async def rewritten() -> bool:
            kv = await client.get(done.key.encode())
            return kv is not None and kv.lease not in (0, first) and kv.lease == done.lease_id

        deadline = time.monotonic() + 10
        while not await rewritten():
            assert time.monotonic() < deadline, "the registration was not written again"
            await asyncio.sleep(0.1)


def test_a_killed_registrar_vanishes_after_its_ttl(etcd_server: EtcdServer) -> None:
    """SIGKILL leaves no chance to revoke: the key disappears when the lease's TTL runs out."""
    proc = _registrar(etcd_server, "api", "10.0.0.8:80", "--ttl", "2")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"registered ")
    finally:
        proc.kill()
        proc.wait()
    listed = CliRunner().invoke(cli(), ["list", "--etcd", etcd_server.url]).output
    assert "10.0.0.8:80" in listed  # still there right after the kill
    deadline = time.monotonic() + 8
    while "10.0.0.8:80" in CliRunner().invoke(cli(), ["list", "--etcd", etcd_server.url]).output:
        assert time.monotonic() < deadline, "the lease did not expire"
        time.sleep(0.2)


def _registrar(etcd_server: EtcdServer, *args: str) -> subprocess.Popen[bytes]:
    """`xdscp register ARGS --etcd URL` in a subprocess, its output piped."""
    code = (
        "from xdscp.logs import configure_logging; configure_logging('warning', 'json');"
        "from xdscp.cli.registry import register_command; register_command()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDSCP_")}
    command = [sys.executable, "-c", code, *args, "--etcd", etcd_server.url]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


async def _present_for(client: EtcdClient, key: bytes, seconds: float) -> None:
    """The key is there at the end of `seconds` (after being there at some point before).

    A lease of TTL < `seconds` not kept alive would have expired: only a working keep-alive
    (or a re-registration) keeps the key.
    """
    await asyncio.sleep(seconds)  # the time that would let an abandoned lease expire
    limit = time.monotonic() + 10
    while await client.get(key) is None:
        assert time.monotonic() < limit, f"{key!r} is gone for good"
        await asyncio.sleep(0.1)


async def test_cli_registrar_survives_etcd_kill_9_and_outages_longer_than_its_ttl(
    etcd_server: EtcdServer,
) -> None:
    """`xdscp register --ttl 2` keeps its key through SIGKILL/restart cycles of etcd, one
    of them an outage longer than the TTL; it never exits on its own meanwhile."""
    proc = _registrar(etcd_server, "api", "10.0.0.11:80", "--ttl", "2")
    key = b"/xdscp/services/api/10.0.0.11:80"
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"registered ")
        async with EtcdClient(etcd_server.config(request_timeout=10.0)) as client:
            for outage in (0.1, 0.5, 3.0):
                etcd_server.kill()
                await asyncio.sleep(outage)  # the outage itself
                etcd_server.start()
                await _present_for(client, key, 5.0)  # 2.5 TTLs after etcd came back
                assert proc.poll() is None, "the registrar ended on its own"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read().decode().splitlines() == [
            f"draining {key.decode()} for 5 s",  # SIGTERM drains by default
            f"deregistered {key.decode()}",
        ]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_registration_block_rewrites_after_etcd_lost_the_lease(
    etcd_server: EtcdServer,
) -> None:
    """A lease revoked behind the registrar's back while etcd restarts is replaced, the key
    written again, and the handle says so (`lease_id` changed, `rewrites` counted)."""
    registration = build_registration("api", "10.0.0.12", 80)
    async with (
        EtcdClient(etcd_server.config(request_timeout=10.0)) as client,
        register(client, registration, ttl=2) as done,
    ):
        first = done.lease_id
        etcd_server.kill()
        etcd_server.start()
        await client.lease_revoke(first)
        deadline = time.monotonic() + 10
        while done.rewrites == 0 or await client.get(done.key.encode()) is None:
            assert time.monotonic() < deadline, "the registration was not written again"
            await asyncio.sleep(0.05)
        kv = await client.get(done.key.encode())
        assert kv is not None
        assert kv.lease == done.lease_id != first
    assert done.revoked
    async with EtcdClient(etcd_server.config()) as client:
        assert await client.get(done.key.encode()) is None


async def test_keeper_survives_its_channel_being_closed_under_it(etcd_server: EtcdServer) -> None:
    """A failover closes the channel while the keep-alive's read is pending (grpc.aio then
    raises CancelledError in the reader, not an RPC error): the keeper reconnects instead of
    ending silently, and the key is still there a TTL later."""
    registration = build_registration("api", "10.0.0.13", 80)
    async with (
        EtcdClient(etcd_server.config()) as client,
        register(client, registration, ttl=3) as done,
    ):
        assert etcd_server.process is not None
        for _ in range(2):
            etcd_server.process.send_signal(signal.SIGSTOP)  # the next keep-alive read hangs
            await asyncio.sleep(1.5)  # longer than the keep-alive interval (1 s)
            await client._rotate(None)  # what a failover to another member does
            etcd_server.process.send_signal(signal.SIGCONT)
        await _present_for(client, done.key.encode(), 4.0)  # over a TTL after the last one
        kv = await client.get(done.key.encode())
        assert kv is not None
        assert kv.lease == done.lease_id  # the keeper's own lease (rewritten if it lapsed)
    assert done.revoked


def test_cli_policy_set_resilience_flags(etcd_server: EtcdServer) -> None:
    """The resilience flags store a policy the registry reads back equal (JSON parts and
    short flags merged); a bad value is refused naming its flag and field."""
    runner, url = CliRunner(), etcd_server.url
    flags = [
        "--lb", "round_robin", "--consecutive-5xx", "3", "--failure-percentage", "60",
        "--ejection-interval", "2s", "--health-check", "http:/ready", "--healthy-threshold", "1",
        "--slow-start-window", "30s", "--max-requests", "64", "--retry-on", "5xx,unavailable",
        "--num-retries", "2", "--per-try-timeout", "500ms", "--timeout", "3s",
        "--outlier-detection", '{"max_ejection_percent": 50}',
    ]  # fmt: skip
    result = runner.invoke(cli(), ["policy", "set", "api", *flags, "--etcd", url])
    assert result.exit_code == 0, result.output
    policy = json.loads(runner.invoke(cli(), ["policy", "show", "api", "--etcd", url]).output)[
        "policy"
    ]
    assert policy["outlier_detection"]["consecutive_5xx"] == 3
    assert policy["outlier_detection"]["max_ejection_percent"] == 50
    assert policy["outlier_detection"]["failure_percentage"]["threshold"] == 60
    assert policy["outlier_detection"]["interval"] == 2.0
    assert policy["health_check"]["path"] == "/ready"
    assert policy["slow_start"]["window"] == 30.0
    assert policy["circuit_breakers"]["max_requests"] == 64
    assert policy["retries"]["retry_on"] == ["5xx", "unavailable"]
    assert policy["timeout"] == 3.0
    bad = runner.invoke(
        cli(), ["policy", "set", "api", "--lb", "round_robin", "--num-retries", "-1", "--etcd", url]
    )
    assert bad.exit_code != 0
    assert "--num-retries" in bad.output
    assert "retries.num_retries" in bad.output
