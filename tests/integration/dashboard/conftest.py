"""What the dashboard's browser tests share: a running `xdscp serve` on a test's etcd,
Debian's chromium under Playwright, and JSON polling of the admin routes.

Without chromium every browser test is skipped before any fixture starts a process
(the `browser` marker, tests/fixtures/requirements.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.fixtures.requirements import find_tool
from xdscp.testing import free_port

START_LIMIT_S = 30.0


def get_json(url: str) -> tuple[int, Any]:
    """(status, decoded body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


async def until(url: str, predicate: Callable[[Any], bool], limit: float = 30.0) -> Any:
    """Poll an admin JSON route (from a thread) until `predicate(json)` holds."""
    async with asyncio.timeout(limit):
        while True:
            try:
                _, value = await asyncio.to_thread(get_json, url)
            except OSError:
                value = None
            if value is not None and predicate(value):
                return value
            await asyncio.sleep(0.05)


class Serve:
    """`xdscp serve --etcd URL [ARGS]` in a subprocess, started and answering `/healthz`."""

    def __init__(self, etcd_url: str, *args: str) -> None:
        admin, self.xds, listener = free_port(), free_port(), free_port()
        self.base = f"http://127.0.0.1:{admin}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xdscp", "--log-format", "json", "serve",
             "--etcd", etcd_url, "--xds", f"127.0.0.1:{self.xds}",
             "--admin", f"127.0.0.1:{admin}", "--listener", f"127.0.0.1:{listener}", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + START_LIMIT_S
        while not self._answers():
            assert self.process.poll() is None, self.process.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "serve did not answer /healthz"
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            return get_json(self.base + "/healthz")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM; it must exit 0 (idempotent)."""
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, err[-2000:]


@pytest.fixture
def serve(etcd_server: EtcdServer) -> Iterator[Serve]:
    """A running serve on the test's etcd; stopped (exit 0 checked) afterwards."""
    running = Serve(etcd_server.url)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's chromium under Playwright (never a downloaded browser)."""
    from playwright.async_api import async_playwright

    chromium = find_tool("chromium")
    assert chromium is not None, "the browser marker skips the test without chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()
