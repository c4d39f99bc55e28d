"""Build and lookup speed of the consistent-hash tables, next to naive baselines.

Run: `.venv/bin/python -m bench.hash_tables [--hosts 10,100,1000 --table-size 65537
--ring-sizes 1024,65536 --lookups 200000]`. Each figure is the best of a few runs. Baselines,
measured in the same run: Envoy's Maglev loop ported literally (every round scans every host,
`(offset + skip * next) % M` recomputed per probe) and Envoy's ketama binary search in Python.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial

import xxhash

from xdscp.balancer.hash.functions import xxh64
from xdscp.balancer.hash.request import request_hash
from xdscp.balancer.hash.tables import MaglevTable, RingHashTable, WeightedKey, normalize_weights
from xdscp.model import ENVOY_MAX_RING, HashFunction, is_prime

M = 65537
LOPSIDED_HOSTS = 1024


def best(run: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of `repeat` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def hosts(count: int, *, lopsided: bool = False) -> list[WeightedKey[int]]:
    """`count` hosts 10.x.y.z:8080, equal weights or one host at 127/128 of the weight."""
    keys = [(f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}:8080", 1, i) for i in range(count)]
    if not lopsided:
        return normalize_weights(keys)
    return normalize_weights(keys[:1], locality_share=127 / 128) + normalize_weights(
        keys[1:], locality_share=1 / 128
    )


def naive_maglev(entries: list[WeightedKey[int]], size: int) -> list[int]:
    """Envoy's OriginalMaglevTable loop, literally."""
    keyed = sorted(entries, key=lambda e: e.key.encode())
    offsets = [xxhash.xxh64_intdigest(e.key.encode()) % size for e in keyed]
    skips = [xxhash.xxh64_intdigest(e.key.encode(), 1) % (size - 1) + 1 for e in keyed]
    max_weight = max(e.weight for e in keyed)
    targets, nexts, table = [0.0] * len(keyed), [0] * len(keyed), [-1] * size
    filled, iteration = 0, 1
    while filled < size:
        for i, entry in enumerate(keyed):
            if filled >= size:
                break
            if iteration * entry.weight < targets[i]:
                continue
            targets[i] += max_weight
            slot = (offsets[i] + skips[i] * nexts[i]) % size
            while table[slot] >= 0:
                nexts[i] += 1
                slot = (offsets[i] + skips[i] * nexts[i]) % size
            table[slot] = i
            nexts[i] += 1
            filled += 1
        iteration += 1
    return table


def ketama(hashes: list[int], h: int) -> int:
    """Envoy's ring binary search, literally."""
    low, high = 0, len(hashes)
    while True:
        mid = (low + high) // 2
        if mid == len(hashes):
            return 0
        value, before = hashes[mid], 0 if mid == 0 else hashes[mid - 1]
        if before < h <= value:
            return mid
        if value < h:
            low = mid + 1
        else:
            high = mid - 1
        if low > high:
            return 0


def _ring(entries: list[WeightedKey[int]], min_ring: int, fn: HashFunction) -> None:
    RingHashTable(entries, min_ring_size=min_ring, max_ring_size=ENVOY_MAX_RING, hash_function=fn)


def bench_builds(host_counts: list[int], table_size: int, ring_sizes: list[int]) -> None:
    """Print ring and Maglev build times."""
    hundred = hosts(100)
    for fn in HashFunction:
        for min_ring in ring_sizes:
            seconds = best(partial(_ring, hundred, min_ring, fn))
            print(f"ring build   min_ring={min_ring:<6} hosts=100   {fn:<14} {seconds:8.4f} s")
    m = table_size
    for count in host_counts:
        entries = hosts(count)
        seconds = best(partial(MaglevTable, entries, table_size=m))
        print(f"maglev build M={m} hosts={count:<5} equal weights  {seconds:8.4f} s")
    lopsided = hosts(LOPSIDED_HOSTS, lopsided=True)
    print(
        f"maglev build M={m} hosts={LOPSIDED_HOSTS}  lopsided       "
        f"{best(lambda: MaglevTable(lopsided, table_size=m)):8.4f} s"
    )
    print(
        f"  baseline: literal Envoy loop, hosts=100          "
        f"{best(lambda: naive_maglev(hundred, m), repeat=1):8.4f} s"
    )
    print(
        f"  baseline: literal Envoy loop, hosts={LOPSIDED_HOSTS} lopsided "
        f"{best(lambda: naive_maglev(lopsided, m), repeat=1):8.4f} s"
    )


def bench_lookups(count: int, table_size: int) -> None:
    """Print lookups per second for ring, Maglev, the ketama baseline and request hashing."""
    probes = [xxh64(str(i)) for i in range(count)]
    ring = RingHashTable(
        hosts(100),
        min_ring_size=1024,
        max_ring_size=ENVOY_MAX_RING,
        hash_function=HashFunction.XX_HASH,
    )
    maglev = MaglevTable(hosts(100), table_size=table_size)
    hashes = list(ring.hashes)
    for name, run in (
        ("ring lookup", lambda: [ring.lookup(p) for p in probes]),
        ("maglev lookup", lambda: [maglev.lookup(p) for p in probes]),
        ("  baseline: ketama search", lambda: [ketama(hashes, p) for p in probes]),
    ):
        print(f"{name:<28} {count / best(run):>12,.0f} /s")
    from envoy.config.route.v3 import route_components_pb2 as rc

    policy = rc.RouteAction.HashPolicy(
        header=rc.RouteAction.HashPolicy.Header(header_name="x-user")
    )
    headers = [{"x-user": f"user-{i}"} for i in range(count // 4)]
    seconds = best(lambda: [request_hash([policy], headers=h) for h in headers])
    print(f"{'request_hash (1 header)':<28} {len(headers) / seconds:>12,.0f} /s")


def _ints(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=_ints, default=[10, 100, 1000], help="Maglev host counts")
    parser.add_argument("--table-size", type=int, default=M, help="Maglev table size (a prime)")
    parser.add_argument("--ring-sizes", type=_ints, default=[1024, 65536], help="ring minimums")
    parser.add_argument("--lookups", type=int, default=200_000, help="lookups per measurement")
    args = parser.parse_args(argv)
    if not is_prime(args.table_size) or args.table_size <= LOPSIDED_HOSTS:
        parser.error(f"--table-size must be a prime above {LOPSIDED_HOSTS}")
    if min(args.hosts + args.ring_sizes) < 1 or args.lookups < 4:
        parser.error("--hosts, --ring-sizes must be positive and --lookups at least 4")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run all benchmarks."""
    args = parse_args(argv)
    bench_builds(args.hosts, args.table_size, args.ring_sizes)
    bench_lookups(args.lookups, args.table_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
