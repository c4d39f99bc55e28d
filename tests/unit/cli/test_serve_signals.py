"""`xdscp serve` hands SIGINT/SIGTERM to its event loop before it starts anything: a signal
while sources start (etcd being connected, a file read) stops it wherever the signal lands,
never lost in one of asyncio's callbacks or background tasks."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

# SIGTERM lands while one of the loop's callbacks runs (as grpc's and the sockets' do while
# the plane starts): a handler raising there, rather than the loop's own, is caught by asyncio.
_SIGNAL_WHILE_SOURCES_START = """
import asyncio, signal, sys
from xdscp import __main__
from xdscp.plane import ControlPlane

async def start(self):
    asyncio.get_running_loop().call_soon(signal.raise_signal, signal.SIGTERM)
    await asyncio.Event().wait()  # a plane that never finishes starting

ControlPlane.start = start
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


# SIGHUP lands while the plane starts, before serve's reload handler exists.
_HANGUP_WHILE_SOURCES_START = """
import asyncio, signal, sys
from xdscp import __main__
from xdscp.plane import ControlPlane

real_start = ControlPlane.start

async def start(self):
    signal.raise_signal(signal.SIGHUP)
    return await real_start(self)

ControlPlane.start = start
sys.argv = ["xdscp", "--log-format", "json", "serve", "--static", sys.argv[1],
            "--xds", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
__main__.main()
"""


def test_a_hangup_while_starting_is_a_reload_once_serving(tmp_path: Path) -> None:
    """SIGHUP before serve installed its reload handler: serve does not die of it (SIGHUP's
    default action), and reloads its files once serving; SIGTERM then stops it with 0."""
    path = tmp_path / "services.yaml"
    path.write_text(GOOD)
    process = subprocess.Popen(
        [sys.executable, "-c", _HANGUP_WHILE_SOURCES_START, str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "xdscp serving ..." once serving, "" if it died
        assert line.startswith("xdscp serving"), (line, process.wait(60), process.stderr)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert '"event": "reload_requested"' in err, err
