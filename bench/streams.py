"""Protocol layer: N xDS streams through xdscp's stream shell, in one process, no gRPC.

    .venv/bin/python bench/streams.py --n 1000 [--delta] [--changes 5] [--out FILE]

Each stream runs `XdsService.serve_stream` (the sans-I/O state, the status record, the
metrics, the shared encoding) fed by an in-process client shaped like Envoy: CDS wildcard,
then EDS for the 50 clusters it got (before its CDS ACK), every response ACKed; state of the
world or delta (`--delta`). The resources: 50 Clusters and 50 ClusterLoadAssignments of 10
endpoints. Measured, in this process:

- *initial ms*: from opening the first stream until every stream holds the 50 CLAs and has
  ACKed them;
- *change ms* (median and min of `--changes`): one CLA changes in the cache until every
  stream has received it and ACKed it;
- *KiB per stream*: VmRSS after the initial sync minus before the streams opened, over N
  (the client's bookkeeping included: the same for every server build).

Standalone on purpose (it imports only `xdscp`), so the same file measures another checkout
of xdscp put first on PYTHONPATH. Prints one JSON line; with `--against DIR` (another
checkout's source, e.g. `git archive main | tar -x -C DIR`) it runs `--repeat` fresh
processes of each build instead, alternating (baseline first), for SotW and delta, and
prints min / median of each figure for both (a baseline measured in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, duration_pb2
from prometheus_client import CollectorRegistry

import xdscp
from xdscp.cache import Resource, Snapshot, SnapshotCache, TypeUrl
from xdscp.server import StatusBoard, XdsMetrics, XdsService

C, E = str(TypeUrl.CLUSTER), str(TypeUrl.ENDPOINT)
ADS = "envoy.service.discovery.v3.AggregatedDiscoveryService"
CLUSTERS = 50
GROUP = "envoy"


def _any(message: Any) -> bytes:
    wrapped = any_pb2.Any()
    wrapped.Pack(message)
    return wrapped.SerializeToString()


def cluster(index: int) -> Resource:
    """Cluster `svc-NN`: EDS over ADS, round robin."""
    message = cluster_pb2.Cluster(
        name=f"svc-{index:02d}", type=cluster_pb2.Cluster.EDS,
        connect_timeout=duration_pb2.Duration(seconds=1),
    )  # fmt: skip
    message.eds_cluster_config.eds_config.ads.SetInParent()
    return Resource(TypeUrl.CLUSTER, message.name, _any(message))


def assignment(index: int, change: int = 0) -> Resource:
    """Its ClusterLoadAssignment: 10 endpoints; change k moves endpoint 0."""
    message = endpoint_pb2.ClusterLoadAssignment(cluster_name=f"svc-{index:02d}")
    group = message.endpoints.add()
    for endpoint in range(10):
        host = f"127.0.200.{change}" if endpoint == 0 and change else f"127.0.0.{endpoint + 1}"
        lb = group.lb_endpoints.add()
        lb.endpoint.address.socket_address.CopyFrom(
            address_pb2.SocketAddress(address=host, port_value=20000 + 10 * index + endpoint)
        )
    return Resource(TypeUrl.ENDPOINT, message.cluster_name, _any(message))


class Client:
    """One stream's client: Envoy's subscription pattern, every response ACKed."""

    def __init__(self, index: int, delta: bool, run: Run) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.delta, self.run, self.index = delta, run, index
        self.held: dict[str, dict[str, bytes]] = {C: {}, E: {}}  # type → name → Any value
        self.eds_asked = False
        self.synced = False
        self.seen_change = 0
        first = self._request(C)
        first.node.id, first.node.user_agent_name = f"bench-{index:05d}", "envoy"
        self.queue.put_nowait(first)

    def _request(self, type_url: str, **fields: Any) -> Any:
        if self.delta:
            return discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, **fields)
        return discovery_pb2.DiscoveryRequest(type_url=type_url, **fields)

    async def requests(self) -> AsyncIterator[Any]:
        while True:
            yield await self.queue.get()

    async def write(self, data: bytes) -> None:
        """The server wrote one response: apply it, ask EDS after the first CDS, ACK."""
        if self.delta:
            response = discovery_pb2.DeltaDiscoveryResponse.FromString(data)
            held = self.held[response.type_url]
            for name in response.removed_resources:
                held.pop(name, None)
            for resource in response.resources:
                held[resource.name] = resource.resource.value
        else:
            response = discovery_pb2.DiscoveryResponse.FromString(data)
            held = self.held[response.type_url]
            if response.type_url == C:
                held.clear()
            for resource in response.resources:
                held[resource.value[2 : 2 + resource.value[1]].decode()] = resource.value
        if response.type_url == C and not self.eds_asked:
            self.eds_asked = True
            names = sorted(f"svc-{i:02d}" for i in range(CLUSTERS))
            key = "resource_names_subscribe" if self.delta else "resource_names"
            self.queue.put_nowait(self._request(E, **{key: names}))
        if self.delta:
            ack = self._request(response.type_url, response_nonce=response.nonce)
        else:
            names = sorted(self.held[E]) if response.type_url == E else []
            ack = self._request(
                response.type_url, version_info=response.version_info,
                response_nonce=response.nonce, resource_names=names,
            )  # fmt: skip
        self.queue.put_nowait(ack)
        if response.type_url == E:
            self._note(response)

    def _note(self, response: Any) -> None:
        if not self.synced and len(self.held[E]) == CLUSTERS:
            self.synced = True
            self.run.arrived()
        change = self.run.change
        if change and self.seen_change != change:
            marker = f"127.0.200.{change}".encode()
            if any(marker in r.value for r in _resources(response, self.delta)):
                self.seen_change = change
                self.run.arrived()


def _resources(response: Any, delta: bool) -> list[Any]:
    return [r.resource for r in response.resources] if delta else list(response.resources)


class Run:
    """Counts streams reaching the awaited state."""

    def __init__(self, n: int) -> None:
        self.n, self.count, self.change = n, 0, 0
        self.done = asyncio.Event()

    def expect(self, change: int) -> None:
        self.count, self.change = 0, change
        self.done.clear()

    def arrived(self) -> None:
        self.count += 1
        if self.count == self.n:
            self.done.set()


def rss_kib() -> int:
    """This process's VmRSS."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def measure(n: int, delta: bool, changes: int) -> dict[str, Any]:
    cache = SnapshotCache()
    snapshot = Snapshot.of([*map(cluster, range(CLUSTERS)), *map(assignment, range(CLUSTERS))])
    cache.set(GROUP, snapshot)
    service = XdsService(cache, XdsMetrics(CollectorRegistry()), StatusBoard())
    run = Run(n)
    gc.collect()
    before = rss_kib()
    started = time.perf_counter()
    clients = [Client(i, delta, run) for i in range(n)]
    tasks = [
        asyncio.create_task(
            service.serve_stream(c.requests(), c.write, ADS, frozenset(TypeUrl), delta=delta)
        )
        for c in clients
    ]
    await run.done.wait()
    initial = time.perf_counter() - started
    await asyncio.sleep(0.2)  # the last ACKs handled
    gc.collect()
    per_stream = (rss_kib() - before) / n
    spans = []
    for change in range(1, changes + 1):
        run.expect(change)
        snapshot = snapshot.updated([assignment(change % CLUSTERS, change)], {})
        started = time.perf_counter()
        cache.set(GROUP, snapshot)
        await run.done.wait()
        spans.append(time.perf_counter() - started)
        await asyncio.sleep(0.1)  # the ACKs handled
    assert len(service.status.streams) == n
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "xdscp": xdscp.__file__.rsplit("/", 2)[0], "n": n, "delta": delta,
        "initial_ms": round(initial * 1000, 1),
        "change_ms_median": round(statistics.median(spans) * 1000, 2) if spans else None,
        "change_ms_min": round(min(spans) * 1000, 2) if spans else None,
        "kib_per_stream": round(per_stream, 2),
    }  # fmt: skip


def compare(args: argparse.Namespace) -> None:
    """Alternate fresh processes of the baseline checkout and this one; print min / median."""
    compare_builds(__file__, args, ("initial_ms", "change_ms_median", "kib_per_stream"))


def compare_builds(script: str, args: argparse.Namespace, figures: tuple[str, ...]) -> None:
    """Run `script` (a bench printing one JSON line of `figures`) in fresh processes,
    alternating the baseline checkout (`args.against` first on PYTHONPATH) and this one,
    `args.repeat` times each, SotW then delta; print each figure's min / median per build and
    the runs as JSON on stderr."""
    builds = {"baseline": {**os.environ, "PYTHONPATH": str(args.against)}, "this": None}
    for delta in (False, True):
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in builds}
        for _ in range(args.repeat):
            for name, env in builds.items():
                argv = [sys.executable, script, "--n", str(args.n)]
                argv += ["--changes", str(args.changes)] + (["--delta"] if delta else [])
                out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
                runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for name, results in runs.items():
            cells = []
            for figure in figures:
                values = [r[figure] for r in results]
                cells.append(f"{figure} {min(values):.1f} / {statistics.median(values):.1f}")
            label = "delta" if delta else "sotw"
            print(
                f"{label:5} {name:8} n={args.n} x{args.repeat} (min / median): " + ", ".join(cells)
            )
            print(json.dumps({"variant": label, "build": name, "runs": results}), file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (refused values exit with the usage)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="streams")
    parser.add_argument("--delta", action="store_true", help="delta xDS (default: SotW)")
    parser.add_argument("--changes", type=int, default=5, help="changes (median, min)")
    parser.add_argument("--against", help="another checkout's source dir: compare with it")
    parser.add_argument("--repeat", type=int, default=5, help="processes per build (--against)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.changes < 0:
        parser.error("--n must be positive, --changes not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # warnings only, as the fan-out bench runs serve: per-stream info logs would be measured
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.against:
        compare(args)
    else:
        print(json.dumps(asyncio.run(measure(args.n, args.delta, args.changes))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
