"""Fixtures of the dashboard's browser tests: a running `xdscp serve` on a test's etcd
(tests/harness/serve.py) and Debian's chromium under Playwright.

Without chromium every browser test is skipped before any fixture starts a process
(the `browser` marker, tests/fixtures/requirements.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.fixtures.requirements import find_tool
from tests.harness.serve import Serve


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
