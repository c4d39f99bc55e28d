"""Driving `xdscp serve` as a subprocess: its admin JSON, its log events as they are written."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import IO, Any

from xdscp.testing import wait_until


def get_json(url: str) -> tuple[int, Any]:
    """GET `url`: the status and the JSON body (error statuses too)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


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
