"""What every phase shares: etcd writer, raw watch, traffic process, Envoy, the change loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fanout.procs import Child
from bench.propagate.changes import backend_of
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.procs.envoy import EnvoyProcess

NODE_ID = "bench-envoy"
STEP_LIMIT_S = 10.0

WaitAck = Callable[[int], Awaitable[float]]
Expect = Callable[[int, int, int | None], None]


class Events:
    """A child's JSON lines, kept by (event, change), read in the background (a child that
    reports several kinds of events per change, in any order)."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.seen: dict[tuple[str, int], dict[str, Any]] = {}
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        stdout = self.child.process.stdout
        assert stdout is not None
        while line := await stdout.readline():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                key = (str(event.get("event")), int(event.get("change", -1)))
                self.seen.setdefault(key, event)
                self.arrived.set()

    async def wait(self, event: str, change: int, limit_s: float) -> dict[str, Any]:
        """The first `event` of `change` (-1: an event without a change)."""
        async with asyncio.timeout(limit_s):
            while (event, change) not in self.seen:
                if self.task.done():
                    raise RuntimeError(f"{self.child.name} exited (see {self.child.stderr.name})")
                self.arrived.clear()
                await self.arrived.wait()
        return self.seen[(event, change)]

    def forget(self) -> None:
        """Drop what was seen (before a phase reuses the change numbers)."""
        self.seen.clear()

    async def stop(self) -> None:
        """Stop reading, then stop the child (always reaped)."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await stop_child(self.child)


@dataclass
class Rig:
    """The parts every phase uses. Times are CLOCK_MONOTONIC seconds (one clock for all
    processes on the machine)."""

    driver: Events
    traffic: Child
    ports: list[int]
    listener_port: int
    workdir: Path
    interval_ms: float
    gap_s: float

    def port_of(self, change: int) -> int:
        """The backend port change `change` registers."""
        return self.ports[backend_of(change, len(self.ports))]

    def name_of(self, change: int) -> str:
        """The backend name change `change` registers (what `x-backend` says)."""
        return f"b{backend_of(change, len(self.ports))}"

    async def arm(self, change: int, limit_s: float, interval_ms: float | None = None) -> None:
        """Start the request loop for change `change` and wait until it runs."""
        interval = self.interval_ms if interval_ms is None else interval_ms
        command = f"ARM {change} {self.name_of(change)} {self.listener_port} {interval} {limit_s}"
        await self.traffic.send(command)
        await self.traffic.wait_event("armed", STEP_LIMIT_S, change=change)

    async def served(self, change: int, limit_s: float) -> dict[str, Any]:
        """The traffic process's `served` event of `change`."""
        return await self.traffic.wait_event("served", limit_s, change=change)


async def start_driver(etcd_url: str, workdir: Path) -> Events:
    """The etcd driver process (writes, raw watch), once its watch is ready."""
    argv = [sys.executable, "-m", "bench.propagate.driver", "--etcd", etcd_url]
    events = Events(await Child.start("driver", argv, workdir / "driver.stderr.log"))
    await events.wait("ready", -1, 60)
    return events


async def reset(rig: Rig) -> None:
    """Every endpoint removed, change 0 registered; earlier change events forgotten."""
    rig.driver.forget()
    await rig.driver.child.send(f"RESET {rig.port_of(0)}")
    await rig.driver.wait("reset", -1, STEP_LIMIT_S)


async def start_traffic(backends: int, workdir: Path) -> tuple[Child, list[int]]:
    """The traffic process and its backends' ports."""
    argv = [sys.executable, "-m", "bench.propagate.traffic", "--backends", str(backends)]
    child = await Child.start("traffic", argv, workdir / "traffic.stderr.log")
    event = await child.wait_event("backends", 60)
    return child, [int(p) for p in event["ports"]]


def ads_bootstrap(xds_port: int, *, delta: bool = False) -> dict[str, Any]:
    """xdscp's own Envoy bootstrap (`xdscp.clients`), pointed at `xds_port`."""
    options = EnvoyBootstrapOptions(
        node_id=NODE_ID, servers=(XdsServer("127.0.0.1", xds_port),), admin_port=0, delta=delta
    )
    return envoy_bootstrap(options)


async def start_envoy(bootstrap: dict[str, Any], workdir: Path) -> EnvoyProcess:
    """A real Envoy (concurrency 1), started off the event loop so xDS keeps being served."""
    envoy = EnvoyProcess(bootstrap, workdir)
    await asyncio.to_thread(envoy.start)
    return envoy


async def stop_envoy(envoy: EnvoyProcess | None) -> None:
    """Stop Envoy (safe when it never started)."""
    if envoy is not None:
        await asyncio.to_thread(envoy.stop)


async def first_served(rig: Rig, limit_s: float) -> None:
    """Wait until Envoy serves change 0 (the phase's starting state)."""
    await rig.arm(0, limit_s, interval_ms=5)
    await rig.served(0, limit_s + 1)


def ms(value: float) -> float:
    """Seconds to milliseconds, rounded to the microsecond."""
    return round(value * 1000, 3) if math.isfinite(value) else float("nan")


async def run_changes(
    rig: Rig,
    count: int,
    wait_ack: WaitAck | None,
    expect: Expect | None = None,
    extra: Callable[[int, float], dict[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """Changes 1..`count`, one at a time: arm the request loop, write, wait for the raw watch
    event, the ACK (when `wait_ack`) and the first request served by the new endpoint."""
    samples = []
    for change in range(1, count + 1):
        if expect is not None:
            expect(change, rig.port_of(change), rig.port_of(change - 1))
        await rig.arm(change, STEP_LIMIT_S)
        await rig.driver.child.send(f"WRITE {change} {rig.port_of(change)}")
        t0 = float((await rig.driver.wait("written", change, STEP_LIMIT_S))["t0"])
        t_watch = float((await rig.driver.wait("watch", change, STEP_LIMIT_S))["t"])
        t_ack = await wait_ack(change) if wait_ack is not None else float("nan")
        served = await rig.served(change, STEP_LIMIT_S + 1)
        sample = {
            "change": change,
            "watch_ms": ms(t_watch - t0),
            "ack_ms": ms(t_ack - t0),
            "added_ms": ms(t_ack - t_watch),
            "first_ms": ms(float(served["t"]) - t0),
            "first_sent_ms": [ms(float(served["t_prev_sent"]) - t0), ms(served["t_sent"] - t0)],
            "requests": served["requests"],
        }
        if extra is not None:
            sample |= extra(change, t0)
        samples.append(sample)
        await asyncio.sleep(rig.gap_s)
    return samples


async def stop_child(child: Child | None) -> None:
    """Stop a child process (always reaped)."""
    if child is not None:
        with contextlib.suppress(Exception):
            await child.stop()


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write `document` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
