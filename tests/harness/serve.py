"""Driving `xdscp serve` as a subprocess (`Serve`): its admin JSON, its log events as they
are written."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import IO, Any

from xdscp.testing import free_port, wait_for, wait_until


def get_json(url: str) -> tuple[int, Any]:
    """GET `url`: the status and the JSON body (error statuses too; an empty error body is
    `None`)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class LogEvents:
    """The `event` of every JSON log line a process writes to `stream`, collected by a
    thread as they come (`--log-format json`); `text()` is the whole output so far."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._lock:
                self._lines.append(line)

    def count(self, event: str) -> int:
        """How many lines so far are the log event `event`."""
        with self._lock:
            lines = list(self._lines)
        return sum(1 for line in lines if _event(line) == event)

    def records(self, event: str) -> list[dict[str, Any]]:
        """Every JSON log record so far that is the event `event`."""
        with self._lock:
            lines = list(self._lines)
        return [record for line in lines if (record := _record(line)).get("event") == event]

    def wait(self, event: str, count: int = 1, limit: float = 30.0) -> None:
        """Block until `event` has been logged `count` times."""
        wait_until(lambda: self.count(event) >= count, limit)

    def text(self, join_s: float = 20.0) -> str:
        """Everything written so far; after the process has exited, all it wrote."""
        self._thread.join(join_s)
        with self._lock:
            return "".join(self._lines)


def _record(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _event(line: str) -> str | None:
    event = _record(line).get("event")
    return event if isinstance(event, str) else None


START_LIMIT_S = 30.0


async def until(url: str, predicate: Callable[[Any], bool], limit: float = 30.0) -> Any:
    """Poll an admin JSON route (from a thread) until `predicate(json)` holds; the JSON."""

    async def holds() -> Any:
        _, value = await asyncio.to_thread(get_json, url)
        return value if value is not None and predicate(value) else None

    return await wait_for(holds, limit, interval=0.05, retry_on=(OSError,), what=url)


class Serve:
    """`xdscp serve --etcd URL [ARGS]` in a subprocess, started and answering `/healthz`;
    `xds` and `listener` choose those ports (replicas share a listener; a restarted replica
    keeps its xDS port), free ones by default; `xds_host` the xDS address (another loopback
    address lets two replicas share one xDS port)."""

    def __init__(
        self,
        etcd_url: str,
        *args: str,
        xds: int | None = None,
        listener: int | None = None,
        xds_host: str = "127.0.0.1",
    ) -> None:
        admin, self.xds = free_port(), xds or free_port()
        self.listener = listener = listener or free_port()  # the listener every Envoy is given
        self.base = f"http://127.0.0.1:{admin}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xdscp", "--log-format", "json", "serve",
             "--etcd", etcd_url, "--xds", f"{xds_host}:{self.xds}",
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

    def kill(self) -> None:
        """SIGKILL, as a crash: no drain, no goodbye to its streams."""
        self.process.kill()
        self.process.communicate(timeout=20)

    def stop(self) -> None:
        """SIGTERM; it must exit 0 (idempotent)."""
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, err[-2000:]
