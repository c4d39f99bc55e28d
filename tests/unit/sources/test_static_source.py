"""The static file source: `reload()` (SIGHUP in `xdscp serve`) reads the file at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from xdscp.model import ServiceSet
from xdscp.sources.static import StaticSource
from xdscp.testing.publish import wait_for

SERVICE = "services:\n  web:\n    endpoints:\n      - {address: 10.0.0.1, port: %d}\n"


async def test_reload_reads_the_file_without_waiting_for_the_poll(tmp_path: Path) -> None:
    """With a 60 s poll, a change is published only once `reload()` is called, at once."""
    path = tmp_path / "services.yaml"
    path.write_text(SERVICE % 80)
    published: asyncio.Queue[ServiceSet] = asyncio.Queue()
    source = StaticSource(path, poll_s=60.0)
    task = asyncio.create_task(source.run(published.put_nowait))
    try:
        first = await asyncio.wait_for(published.get(), 5)
        assert first["web"].endpoints[0].port == 80
        path.write_text(SERVICE % 81)
        with pytest.raises(TimeoutError):  # the poll has not come round: nothing new yet
            await asyncio.wait_for(published.get(), 0.3)
        source.reload()
        second = await asyncio.wait_for(published.get(), 1.0)
        assert second["web"].endpoints[0].port == 81
    finally:
        task.cancel()


async def test_a_bad_reload_names_the_file_and_line_and_keeps_the_last_good(
    tmp_path: Path,
) -> None:
    """A bad edit (SIGHUP) is logged with the real path and line (PyYAML named
    `"<unicode string>"`) and nothing is published: the last good services stay."""
    path = tmp_path / "services.yaml"
    path.write_text(SERVICE % 80)
    published: asyncio.Queue[ServiceSet] = asyncio.Queue()
    source = StaticSource(path, poll_s=60.0)
    task = asyncio.create_task(source.run(published.put_nowait))
    try:
        with capture_logs() as logs:
            first = await asyncio.wait_for(published.get(), 5)
            path.write_text(SERVICE % 81 + "  api:\n    endpoint: []\n")
            source.reload()
            await wait_for(lambda: source.last_error is not None, 30.0)
        assert first["web"].endpoints[0].port == 80
        assert published.empty()
        expected = f"{path}:6: services.api: unknown field 'endpoint', did you mean 'endpoints'?"
        assert source.last_error == expected
        assert [e["error"] for e in logs if e["event"] == "static_services_invalid"] == [
            source.last_error
        ]
    finally:
        task.cancel()
