"""`xdscp serve` hands SIGINT/SIGTERM to its event loop before it starts anything: a signal
while sources start (etcd being connected, a file read) stops it wherever the signal lands,
never lost in one of asyncio's callbacks or background tasks."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

# SIGTERM lands while one of the loop's callbacks runs (as grpc's and the sockets' do while
# sources start): a handler raising there, rather than the loop's own, is caught by asyncio.
_SIGNAL_WHILE_SOURCES_START = """
import asyncio, signal, sys
import xdscp.cli.serve
from xdscp import __main__

async def sources(*args, **kwargs):
    asyncio.get_running_loop().call_soon(signal.raise_signal, signal.SIGTERM)
    await asyncio.Event().wait()  # a source that never finishes starting

xdscp.cli.serve._sources = sources
sys.argv = ["xdscp", "serve", "--static", sys.argv[1], "--xds", "127.0.0.1:0",
            "--admin", "127.0.0.1:0"]
__main__.main()
"""

GOOD = "services:\n  web:\n    endpoints:\n      - {address: 10.0.0.1, port: 80}\n"


def test_a_signal_while_sources_start_stops_serve(tmp_path: Path) -> None:
    """SIGTERM while the sources start: one line, and serve ends by that signal."""
    path = tmp_path / "services.yaml"
    path.write_text(GOOD)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SIGNAL_WHILE_SOURCES_START, str(path)],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        lost = f"the signal was lost: serve went on starting\n{exc.stderr!r}"
        raise AssertionError(lost) from None
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert done.stderr.splitlines()[-1] == "xdscp: stopped by SIGTERM", done.stderr
    assert "Traceback" not in done.stderr, done.stderr
