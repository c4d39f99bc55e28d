"""scripts/compose/backend.sh, the backends' entry point, run in the runner container against
the stack's etcd (service `script-check`, not the suite's `web`): a signal during start-up is
said and leaves nothing registered; a registrar that cannot register stops the container with
its status instead of leaving an unregistered backend running."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from tests.harness.paths import ROOT
from tests.harness.stack import Stack, requires_stack
from xdscp.etcd import EtcdClient

pytestmark = [pytest.mark.compose, requires_stack]
SCRIPT = ROOT / "scripts" / "compose" / "backend.sh"
SERVICE = "script-check"
PREFIX = f"/xdscp/services/{SERVICE}/".encode()
WITHIN_S = 120.0  # start-up and a 5 s drain on a loaded 2-core machine


async def _start(stack: Stack, name: str, port: int) -> asyncio.subprocess.Process:
    env = {
        **os.environ, "BACKEND_NAME": name, "SERVICE": SERVICE, "PORT": str(port),
        "XDSCP_ETCD": ",".join(stack.etcd),
    }  # fmt: skip
    return await asyncio.create_subprocess_exec(
        str(SCRIPT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )


async def _read_until(process: asyncio.subprocess.Process, text: str) -> str:
    """The script's output up to the first line holding `text`."""
    assert process.stdout is not None
    seen: list[str] = []
    async with asyncio.timeout(WITHIN_S):
        while line := (await process.stdout.readline()).decode():
            seen.append(line)
            if text in line:
                return "".join(seen)
    raise AssertionError(f"the script ended without saying {text!r}: {''.join(seen)}")


async def _ended(process: asyncio.subprocess.Process) -> tuple[int, str]:
    """Its exit status and the rest of its output (once every child closed it too)."""
    async with asyncio.timeout(WITHIN_S):
        out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_a_signal_during_start_is_said_and_leaves_nothing_registered(
    stack: Stack, etcd: EtcdClient
) -> None:
    """SIGTERM as soon as the script runs (its trap is in place before its first line): it
    says which signal stopped it, exits 0, and its endpoint is not left in etcd."""
    process = await _start(stack, "signalled", 18081)
    try:
        head = await _read_until(process, "starting on")
        process.terminate()
        status, rest = await _ended(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = head + rest
    assert "got SIGTERM: stopping" in output, output
    assert "stopped by SIGTERM" in output, output
    assert status == 0, output
    kvs, _ = await etcd.get_prefix(PREFIX)
    assert kvs == [], output


async def test_a_registrar_that_cannot_register_stops_the_container(
    stack: Stack, etcd: EtcdClient
) -> None:
    """Its key already exists (written without a lease): `xdscp register` refuses with status
    3, and the script stops the backend and exits 3 rather than serve unregistered."""
    ip = socket.gethostbyname(socket.gethostname())
    key = PREFIX + f"{ip}:18082".encode()
    await etcd.put(key, b'{"address": "192.0.2.1", "port": 1}')
    try:
        process = await _start(stack, "refused", 18082)
        status, output = await _ended(process)
    finally:
        await etcd.delete(key)
    assert "xdscp register exited with status 3: stopping the backend" in output, output
    assert status == 3, output
