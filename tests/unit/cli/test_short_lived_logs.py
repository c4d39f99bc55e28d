"""Short-lived commands print human one-line messages on a pipe, never JSON log lines;
long-running ones keep JSON lines for log collectors."""

from __future__ import annotations

import json
import subprocess
import sys

from xdscp.logs import one_line

NO_ETCD = "http://127.0.0.1:1"  # nothing listens on port 1: refused at once


def _xdscp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdscp", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_short_lived_command_on_a_pipe_prints_plain_lines() -> None:
    """stderr is a pipe here (not a terminal): it printed a JSON object per event."""
    result = _xdscp("policy", "show", "web", "--etcd", NO_ETCD)
    assert result.returncode == 1
    assert result.stderr == (
        f"warning: etcd endpoint unreachable (endpoint={NO_ETCD})\n"
        f"Error: no etcd endpoint reachable ({NO_ETCD})\n"
    )


def test_json_when_asked_for() -> None:
    result = _xdscp("--log-format", "json", "policy", "show", "web", "--etcd", NO_ETCD)
    first = json.loads(result.stderr.splitlines()[0])
    assert (first["event"], first["level"]) == ("etcd_endpoint_unreachable", "warning")


def test_one_line_keeps_only_the_last_line_of_a_traceback() -> None:
    event = {
        "event": "x_failed",
        "timestamp": "t",
        "level": "error",
        "exception": "a\nb\nOSError: c",
    }
    assert one_line(None, "error", event) == "error: x failed (exception=OSError: c)"
