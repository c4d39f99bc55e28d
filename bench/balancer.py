"""Pick rate of every reference balancer and the build time of the hash tables.

Run: `.venv/bin/python -m bench.balancer [--sizes 10,100,1000 --picks 100000 --out FILE]`.
For 10, 100 and 1000 endpoints it measures picks per
second for each policy (Envoy and gRPC modes; hash policies are given a precomputed request
hash, as Envoy computes the hash before the pick) and the time `build_balancer` takes for
RING_HASH and MAGLEV (65537 slots). Baseline, measured in the same run: calls per second of
`random.Random().random()` — no Python pick can be faster than drawing one random number.
Prints a table and writes bench/results/balancer.json. Targets: >= 100k picks/s for every
policy; the 100-endpoint Maglev build < 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from xdscp.balancer import build_balancer
from xdscp.balancer.hash.functions import xxh64

SIZES = (10, 100, 1000)
PICKS = 100_000
RESULTS = Path(__file__).parent / "results" / "balancer.json"
PICK_TARGET = 100_000.0
MAGLEV_BUILD_TARGET = 0.2

# (label, client, lb_policy, weighted endpoints, hashed)
CASES = [
    ("envoy round_robin (equal)", "envoy", "ROUND_ROBIN", False, False),
    ("envoy round_robin (weighted, EDF)", "envoy", "ROUND_ROBIN", True, False),
    ("envoy least_request (P2C)", "envoy", "LEAST_REQUEST", False, False),
    ("envoy least_request (weighted, EDF)", "envoy", "LEAST_REQUEST", True, False),
    ("envoy random", "envoy", "RANDOM", True, False),
    ("envoy ring_hash (hash given)", "envoy", "RING_HASH", True, True),
    ("envoy maglev (hash given)", "envoy", "MAGLEV", True, True),
    ("envoy maglev (no hash: weighted random)", "envoy", "MAGLEV", True, False),
    ("grpc round_robin", "grpc", "ROUND_ROBIN", True, False),
    ("grpc ring_hash (hash given)", "grpc", "RING_HASH", True, True),
]


def resources(count: int, policy: str, *, weighted: bool) -> tuple[Any, Any]:
    """A Cluster and a CLA with `count` endpoints in 4 localities (weights 1-5 if weighted)."""
    cluster = cluster_pb2.Cluster(
        name="bench", lb_policy=cluster_pb2.Cluster.LbPolicy.Value(policy)
    )
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name="bench")
    groups = []
    for zone in range(4):
        group = cla.endpoints.add()
        group.locality.zone = f"zone-{zone}"
        group.load_balancing_weight.value = 1
        groups.append(group)
    for i in range(count):
        lb = groups[i % 4].lb_endpoints.add()
        lb.endpoint.address.socket_address.address = (
            f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}"
        )
        lb.endpoint.address.socket_address.port_value = 8080
        lb.load_balancing_weight.value = 1 + i % 5 if weighted else 1
    return cluster, cla


def rate(run: Callable[[int], object], n: int) -> float:
    """Calls per second of `run(n)`, best of three."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        run(n)
        best = min(best, time.perf_counter() - start)
    return n / best


def baseline(picks: int) -> float:
    """`random.Random().random()` calls per second: the floor for any Python pick."""
    rng = random.Random(1)

    def run(n: int) -> None:
        draw = rng.random
        for _ in range(n):
            draw()

    return rate(run, picks * 5)


def pick_rate(
    count: int, client: str, policy: str, *, weighted: bool, hashed: bool, picks: int
) -> float:
    """Picks per second of one balancer (`picks` picks, best of three)."""
    cluster, cla = resources(count, policy, weighted=weighted)
    lb = build_balancer(cluster, cla, client=client, rng=random.Random(7))  # type: ignore[arg-type]
    hashes = [xxh64(f"client-{i}") for i in range(1024)]

    def run(n: int) -> None:
        choose = lb.choose
        if hashed:
            for i in range(n):
                choose(hashes[i & 1023])
        else:
            for _ in range(n):
                choose()

    return rate(run, picks)


def build_time(count: int, policy: str) -> float:
    """Seconds `build_balancer` takes (best of three) — dominated by the table build."""
    cluster, cla = resources(count, policy, weighted=True)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        build_balancer(cluster, cla, rng=random.Random(1))
        best = min(best, time.perf_counter() - start)
    return best


def measure_picks(sizes: list[int], picks: int) -> dict[str, dict[str, float]]:
    """Picks per second of every case at every size, printed as a table row per case."""
    print(f"{'policy':42}" + "".join(f"{n:>14} eps" for n in sizes))
    rates: dict[str, dict[str, float]] = {}
    for label, client, policy, weighted, hashed in CASES:
        row = {
            str(n): pick_rate(n, client, policy, weighted=weighted, hashed=hashed, picks=picks)
            for n in sizes
        }
        rates[label] = row
        flag = "" if min(row.values()) >= PICK_TARGET else "  < target"
        print(f"{label:42}" + "".join(f"{v:>14,.0f} /s" for v in row.values()) + flag)
    return rates


def measure_builds(sizes: list[int]) -> dict[str, dict[str, float]]:
    """Build seconds of the hash balancers at every size, printed as a row per policy."""
    builds = {
        policy: {str(n): build_time(n, policy) for n in sizes} for policy in ("RING_HASH", "MAGLEV")
    }
    for policy, row in builds.items():
        print(f"build {policy:36}" + "".join(f"{v * 1000:>14.1f} ms " for v in row.values()))
    maglev_100 = builds["MAGLEV"].get("100")
    if maglev_100 is None:
        print("maglev 65537 x 100 endpoints: not measured (100 is not among --sizes)")
    else:
        print(
            f"maglev 65537 x 100 endpoints: {maglev_100 * 1000:.1f} ms "
            f"({'meets' if maglev_100 < MAGLEV_BUILD_TARGET else 'MISSES'} the 200 ms target)"
        )
    return builds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="endpoint counts")
    parser.add_argument("--picks", type=int, default=PICKS, help="picks per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.sizes = [int(n) for n in args.sizes.split(",")]
    if min(args.sizes) < 1 or args.picks < 1:
        parser.error("--sizes and --picks must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and write the JSON results."""
    args = parse_args(argv)
    floor = baseline(args.picks)
    print(f"baseline random.Random().random(): {floor:,.0f} calls/s")
    picks = measure_picks(args.sizes, args.picks)
    builds = measure_builds(args.sizes)
    document = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "baseline_random_calls_per_s": floor,
        "picks_per_s": picks,
        "build_seconds": builds,
        "targets": {"picks_per_s": PICK_TARGET, "maglev_100_build_s": MAGLEV_BUILD_TARGET},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
