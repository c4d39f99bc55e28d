"""Child processes speaking JSON lines, and their CPU and memory from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

STOP_GRACE_S = 10.0


class ChildError(RuntimeError):
    """A child process died, timed out or reported a failure."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` so far (utime + stime of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of `pid`, MiB."""
    out = {"rss_mib": float("nan"), "hwm_mib": float("nan")}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss_mib" if key == "VmRSS" else "hwm_mib"] = int(value.split()[0]) / 1024
    return out


@dataclass(slots=True)
class Child:
    """A started process: JSON events from its stdout, commands to its stdin (when it reads
    them: `commands`; a child that does not, such as `xdscp serve`, is stopped by SIGTERM)."""

    name: str
    process: asyncio.subprocess.Process
    stderr: IO[bytes]
    commands: bool = True
    events: deque[dict[str, Any]] = field(default_factory=deque)
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def start(cls, name: str, argv: list[str], log: Path, *, commands: bool = True) -> Child:
        """Start `argv`, stderr to `log`."""
        stderr = log.open("wb")
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr
        )
        return cls(name, process, stderr, commands)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    async def send(self, line: str) -> None:
        """Write one command line."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()

    async def wait_event(self, event: str, limit_s: float, **match: Any) -> dict[str, Any]:
        """The next event named `event` whose fields equal `match`; earlier ones are dropped."""
        async with asyncio.timeout(limit_s):
            while True:
                found = await self._next()
                if found.get("event") in ("timeout", "done") and event not in ("timeout", "done"):
                    raise ChildError(f"{self.name}: {found}")
                if found.get("event") == event and all(found.get(k) == v for k, v in match.items()):
                    return found

    async def _next(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                code = await self.process.wait()
                raise ChildError(f"{self.name} exited with {code} (see {self.stderr.name})")
            with contextlib.suppress(ValueError):
                parsed = json.loads(line)
                if isinstance(parsed, dict):
                    return parsed

    async def stop(self) -> int | None:
        """Ask with STOP (end of input) when it reads commands, then terminate, then kill;
        always reaps."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, AttributeError):
            if self.commands:
                await self.send("STOP")
            self.process.stdin.close()  # type: ignore[union-attr]
        asks = (None,) if self.commands else ()
        for action in (*asks, self.process.terminate, self.process.kill):
            if action is not None and self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    action()
            try:
                async with asyncio.timeout(STOP_GRACE_S):
                    await self._drain_and_wait()
                break
            except TimeoutError:
                continue
        self.stderr.close()
        return self.process.returncode

    async def _drain_and_wait(self) -> None:
        if self.process.stdout is not None:
            while await self.process.stdout.read(65536):
                pass
        await self.process.wait()


def machine_busy_seconds() -> float:
    """Non-idle CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
