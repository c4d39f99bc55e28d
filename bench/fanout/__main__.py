"""Orchestrator: every server at every N, one generator process per run, table + JSON.

Run: `.venv/bin/python -m bench.fanout [--n 100,1000] [--servers baseline,go,xdscp]
[--repeat 3]`. For each server and N: start the server, start the generator, wait until all
N streams hold the initial config, then K times: arm the generator for change k, take the
trigger time, trigger the change in the server, wait until all N streams have ACKed it.
Server CPU seconds come from /proc/PID/stat, memory from /proc/PID/status. Prints a table
with the baseline's figures beside each and writes bench/results/fanout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fanout import report
from bench.fanout.procs import Child, ChildError, cpu_seconds, machine_busy_seconds, memory_mib
from bench.fanout.resources import MAX_CHANGES, write_resources
from bench.fanout.servers import SERVERS, Server

RESULTS = Path(__file__).resolve().parent.parent / "results" / "fanout.json"
SETTLE_S = 0.3


async def measure_changes(
    server: Server, child: Child, generator: Child, *, repeat: int, workdir: Path, budget: float
) -> dict[str, list[float]]:
    """Trigger `repeat` changes. Per change: trigger -> last stream's ACK ("changes_s"),
    first stream's ACK -> last stream's ACK ("spreads_s": the fan-out itself, free of the
    server's change detection delay), server CPU seconds, generator CPU seconds (close to
    the span means the generator was the bottleneck)."""
    spans, spreads, cpus, generator_cpus = [], [], [], []
    for change in range(1, repeat + 1):
        await generator.send(f"ARM {change}")
        await generator.wait_event("armed", budget, change=change)
        await asyncio.sleep(SETTLE_S)
        cpu_before = cpu_seconds(child.pid)
        generator_before = cpu_seconds(generator.pid)
        t_trigger = time.monotonic()
        await server.trigger(child, change, workdir)
        event = await generator.wait_event("converged", budget, change=change)
        await asyncio.sleep(SETTLE_S)  # let the server finish reading the N ACKs
        cpus.append(cpu_seconds(child.pid) - cpu_before)
        generator_cpus.append(cpu_seconds(generator.pid) - generator_before)
        spans.append(report.change_seconds(t_trigger, float(event["t_last_ack"])))
        spreads.append(report.change_seconds(float(event["t_first_ack"]), event["t_last_ack"]))
    return {"changes_s": spans, "spreads_s": spreads, "cpu": cpus, "generator_cpu": generator_cpus}


async def start_generator(
    target: str, streams: int, args: argparse.Namespace, workdir: Path
) -> Child:
    """The load generator process for one run."""
    argv = [sys.executable, "-m", "bench.fanout.generator", "--target", target,
            "--n", str(streams), "--channels", str(args.channels),
            "--timeout", str(args.run_timeout)]  # fmt: skip
    return await Child.start("generator", argv, workdir / "generator.stderr.log")


async def one_run(
    server: Server, streams: int, args: argparse.Namespace, resources: Path, workdir: Path
) -> dict[str, Any]:
    """Start the server and the generator, measure, stop both (always)."""
    load = os.getloadavg()[0]
    start = (time.monotonic(), machine_busy_seconds(), time.process_time())
    child, port = await server.start(resources, workdir)
    generator: Child | None = None
    try:
        cpu_start = cpu_seconds(child.pid)
        generator = await start_generator(f"127.0.0.1:{port}", streams, args, workdir)
        ready = await generator.wait_event("ready", args.run_timeout)
        cpu_initial = cpu_seconds(child.pid) - cpu_start
        changes = await measure_changes(
            server, child, generator, repeat=args.repeat, workdir=workdir, budget=args.run_timeout
        )
        memory = memory_mib(child.pid)
        server_acks = await server.server_acks(child) if server.server_acks else None
        ours = cpu_seconds(child.pid) + cpu_seconds(generator.pid) + time.process_time() - start[2]
        others = report.others_cores(
            machine_busy_seconds() - start[1], ours, time.monotonic() - start[0]
        )
    finally:
        if generator is not None:
            await generator.stop()
        await child.stop()
    result = report.summarize(
        server.name, streams, initial_s=float(ready["initial_s"]), changes_s=changes["changes_s"],
        spreads_s=changes["spreads_s"], cpu_initial_s=cpu_initial, cpu_changes_s=changes["cpu"],
        memory=memory,
    )  # fmt: skip
    extra = {"generator_cpu_change_s": report.median(changes["generator_cpu"]),
             "load_1min_before": load, "others_cores": others, "channels": args.channels or None,
             "server_view_after_last_change": server_acks}  # fmt: skip
    return {**result, **extra}


async def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every selected server at every N; a failed run is recorded, not fatal."""
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="xdscp-fanout-") as tmp:
        resources = Path(tmp) / "resources"
        write_resources(resources, args.repeat)
        for name in args.servers:
            server = SERVERS[name]
            reason = await asyncio.to_thread(server.skip_reason)
            if reason is not None:
                print(f"skip {name}: {reason}", flush=True)
                continue
            for streams in args.n:
                workdir = Path(tmp) / f"{name}-{streams}"
                workdir.mkdir()
                print(f"run {name} N={streams} (load {os.getloadavg()[0]:.2f})", flush=True)
                try:
                    results.append(await one_run(server, streams, args, resources, workdir))
                    print(f"  other processes used {results[-1]['others_cores']:.2f} cores")
                except (ChildError, TimeoutError) as error:
                    print(f"  failed: {error!r}", flush=True)
                    results.append({"server": name, "n": streams, "error": repr(error)})
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="100,1000", help="comma-separated stream counts")
    parser.add_argument("--servers", default="baseline,go,xdscp", help="comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="changes per run (median)")
    parser.add_argument(
        "--channels", type=int, default=0, help="HTTP/2 connections of the generator (0: N/100)"
    )
    parser.add_argument("--run-timeout", type=float, default=180.0, help="seconds per run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.n = [int(n) for n in args.n.split(",")]
    args.servers = [s.strip() for s in args.servers.split(",")]
    args.servers = ["go" if s == "go-control-plane" else s for s in args.servers]
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; known: {sorted(SERVERS)}")
    if not 1 <= args.repeat <= MAX_CHANGES:
        parser.error(f"--repeat must be within 1..{MAX_CHANGES}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    results = asyncio.run(run_all(args))
    measured = [r for r in results if "error" not in r]
    print(report.table(measured))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "repeat": args.repeat,
        "runs": report.with_baseline(measured),
        "failed": [r for r in results if "error" in r],
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if document["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
