"""Stopping a child process: SIGTERM, a grace period, SIGKILL, reaped."""

from __future__ import annotations

import subprocess


def terminate(process: subprocess.Popen[bytes] | None, grace_s: float) -> int | None:
    """SIGTERM `process`, SIGKILL it if it outlives `grace_s`, and reap it.

    The pid when it was running and has now been stopped; None when there was nothing to
    stop (no process, or one that had already exited). Safe to call twice.
    """
    if process is None or process.poll() is not None:
        return None
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_s)
    return process.pid
