"""The go-control-plane phase: the same etcd writes, the same snapshots, the same Envoy setup.

The wrapper (`bench/peers/go-propagation`, go-control-plane v0.14.0 and the Go etcd client
v3.5.21 from the Go module proxy) watches the same etcd prefix itself, so its write -> ACK is
the same path as xdscp's; the snapshots it serves are the ones xdscp built in this run
(written here as serialized DiscoveryResponses), so Envoy receives identical resources and
only the serving differs. Translation is therefore not on go-control-plane's path.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bench.fanout.procs import Child
from bench.fanout.servers import PEERS, go_build
from bench.propagate import report
from bench.propagate.changes import PREFIX
from bench.propagate.rig import (
    STEP_LIMIT_S,
    Events,
    Rig,
    ads_bootstrap,
    first_served,
    ms,
    reset,
    run_changes,
    start_envoy,
    stop_child,
    stop_envoy,
)
from xdscp.cache import Snapshot, TypeUrl
from xdscp.procs.envoy import EnvoyProcess
from xdscp.server.wire import encode_response

BINARY = PEERS / "bin" / "go-propagation"
FILES = {TypeUrl.CLUSTER: "cds.pb", TypeUrl.LISTENER: "lds.pb", TypeUrl.ROUTE: "rds.pb"}


def build() -> None:
    """Build the wrapper (raises with the reason it can't)."""
    reason = go_build(BINARY.name)
    if reason is not None:
        raise RuntimeError(reason)


def _response(snapshot: Snapshot, type_url: TypeUrl) -> bytes:
    resources = snapshot.resources[type_url]
    items = [resources[name] for name in sorted(resources)]
    return encode_response(snapshot.versions[type_url], type_url, "", items)


def export(snapshots: dict[int, Snapshot], directory: Path) -> None:
    """cds/lds/rds.pb (the same in every change: checked) and eds-K.pb per change."""
    directory.mkdir(parents=True, exist_ok=True)
    first = snapshots[0]
    for type_url, name in FILES.items():
        if any(s.versions[type_url] != first.versions[type_url] for s in snapshots.values()):
            raise RuntimeError(f"{name}: the changes alter more than endpoints")
        (directory / name).write_bytes(_response(first, type_url))
    for change, snapshot in snapshots.items():
        (directory / f"eds-{change}.pb").write_bytes(_response(snapshot, TypeUrl.ENDPOINT))


async def phase(
    rig: Rig, etcd: Any, snapshots: dict[int, Snapshot], changes: int
) -> dict[str, Any]:
    """Start the wrapper and an Envoy on it, run `changes` changes, stop both."""
    await asyncio.to_thread(build)
    resources = rig.workdir / "go-resources"
    export(snapshots, resources)
    await reset(rig)
    argv = [str(BINARY), "-resources", str(resources), "-etcd", etcd.url, "-prefix", PREFIX]
    child = await Child.start("go-propagation", argv, rig.workdir / "go.stderr.log")
    envoy: EnvoyProcess | None = None
    events: Events | None = None
    try:
        events = Events(child)
        port = int((await events.wait("listening", -1, 30))["port"])
        envoy = await start_envoy(ads_bootstrap(port), rig.workdir / "envoy-go")
        await first_served(rig, 30)
        watched = events

        async def wait_ack(change: int) -> float:
            return float((await watched.wait("ack", change, STEP_LIMIT_S))["t"])

        def extra(change: int, t0: float) -> dict[str, float]:
            return {"peer_watch_ms": ms(float(watched.seen[("set", change)]["t_watch"]) - t0)}

        samples = await run_changes(rig, changes, wait_ack, extra=extra)
    finally:
        await stop_envoy(envoy)
        if events is not None:
            await events.stop()
        else:
            await stop_child(child)
    return report.summarize("go", samples)
