"""Hostile registry entries in a real etcd, watched by a real `xdscp serve`, with a real Envoy.

Arbitrary keys and values — bytes that are not UTF-8, control characters and trailing
newlines in names, names clashing by case or domain suffix, deep nesting, sizes around the
value limit and up to etcd's request limit, unpaired surrogates, both registry formats and
policies — are written beside good registrations. After each batch: serve is still running,
every good endpoint is in Envoy's `/clusters`, Envoy has NACKed nothing (`/debug/nodes`), and
`xdscp_registry_rejected_total` on serve's `/metrics` grew by exactly the number of bad
entries (an in-process `RegistryState` fed the same writes is the oracle).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.etcd import EtcdServer
from tests.harness.hostile import registry_documents
from xdscp.clients import EnvoyBootstrapOptions, XdsServer, envoy_bootstrap
from xdscp.etcd import EtcdClient, WatchEvent, WatchEventType
from xdscp.procs.envoy import EnvoyProcess
from xdscp.registry import GrpcGoTarget, RegistryLayout, RegistryState
from xdscp.registry.codec import MAX_VALUE_BYTES
from xdscp.testing import free_port, wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.etcd, pytest.mark.slow]

ROOT, POLICIES = b"/xdscp/services/", b"/xdscp/policies/"
TARGET = GrpcGoTarget.parse("gsvc=team/gtarget")
GO_PREFIX = TARGET.prefix.encode()
SUFFIX = ".svc"
LAYOUT = RegistryLayout(grpc_targets=(TARGET,), domain_suffixes=(SUFFIX,))
GOOD_NATIVE = {f"good{i}": [("127.0.0.1", 21000 + 10 * i + j) for j in range(2)] for i in range(3)}
GOOD_GO = [("127.0.0.1", 22001), ("127.0.0.1", 22002)]
GOOD_POLICY = {"lb": "ring_hash", "hash_on": ["header:x-user"]}
ETCD_LIMIT = 1_400_000  # under etcd's default 1.5 MiB request limit


def _good_writes() -> list[tuple[bytes, bytes]]:
    writes = [
        (ROOT + f"{svc}/{n}".encode(), json.dumps({"address": ip, "port": port}).encode())
        for svc, addrs in GOOD_NATIVE.items()
        for n, (ip, port) in enumerate(addrs)
    ]
    writes += [
        (GO_PREFIX + str(n).encode(), json.dumps({"Op": 0, "Addr": f"{ip}:{port}"}).encode())
        for n, (ip, port) in enumerate(GOOD_GO)
    ]
    writes.append((POLICIES + b"good0", json.dumps(GOOD_POLICY).encode()))
    return writes


GOOD_KEYS = {key for key, _ in _good_writes()}
GOOD_SERVICES = {*GOOD_NATIVE, TARGET.service}
GOOD_ENDPOINTS = {(svc, f"{ip}:{port}") for svc, addrs in GOOD_NATIVE.items() for ip, port in addrs}
GOOD_ENDPOINTS |= {(TARGET.service, f"{ip}:{port}") for ip, port in GOOD_GO}


# --- the hostile entries --------------------------------------------------------------------

names = st.sampled_from(
    ["good0", "GOOD0", "Good1", "good2.svc", "good1.SVC", "good-nl\n", "tab\t", "nul\x00",
     "fresh", "FRESH", "fresh.svc", "wé", "x" * 203, "", "gsvc", "GSVC"]
)  # fmt: skip
ids = st.sampled_from(["h1", "h2", "\n", "a/b", "é", "\x7f"]) | st.text(max_size=6)
text_keys = st.builds(lambda n, i: f"{n}/{i}".encode("utf-8", "surrogatepass"), names, ids)
raw_keys = (
    text_keys
    | names.map(lambda n: n.encode("utf-8", "surrogatepass"))
    | st.binary(min_size=1, max_size=30)
    | st.builds(lambda n, b: n.encode() + b"/" + b, names, st.binary(max_size=6))
    | st.just(b"k" * 1100)
)
leaves = (
    st.none() | st.booleans() | st.integers(-5, 70000) | st.floats() | st.text(max_size=8)
    | st.sampled_from(["127.0.0.9", "::1", "127.1", "10.0.0.256", "\ud800", "maglev",
                       "127.0.0.1:22999", "ring_hash", "header:x-u\n", "nowhere.invalid"])
)  # fmt: skip
documents = registry_documents(leaves, max_leaves=8)
values = (
    documents.map(lambda d: json.dumps(d).encode("utf-8", "surrogatepass"))
    | st.binary(max_size=40)
    | st.sampled_from([b"[" * 3000 + b"]" * 3000, b'{"a":' * 3000 + b"1" + b"}" * 3000])
    | st.sampled_from([MAX_VALUE_BYTES + 1, ETCD_LIMIT]).map(lambda n: b"[" + b" " * (n - 2) + b"]")
    | st.builds(
        lambda port: json.dumps({"address": "127.0.0.9", "port": port}).encode(),
        st.integers(-1, 70000),
    )
)
entries = st.lists(
    st.tuples(st.sampled_from([ROOT, POLICIES, GO_PREFIX]), raw_keys, values),
    min_size=1,
    max_size=10,
    unique_by=lambda e: e[0] + e[1],
).map(lambda es: [(p + k, v) for p, k, v in es if p + k not in GOOD_KEYS])


VALID = b'{"address":"127.0.0.1","port":23001}'
POISON = [  # the reproductions, always tried first
    (ROOT + b"good-nl\n/x", VALID),
    (ROOT + b"GOOD0/x", VALID),
    (ROOT + b"good1.svc/x", VALID),
    (ROOT + b"good2/\xff", b'{"oops":'),
    (ROOT + b"good2/\xfe", VALID),
    (ROOT + b"good2/deep", b"[" * 3000 + b"]" * 3000),
    (POLICIES + b"good1", b"[" * 3000 + b"]" * 3000),
    (GO_PREFIX + b"\xff", b'{"Op":0,"Addr":"127.0.0.1:23002"}'),
]


# --- serve, Envoy and the probes ------------------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), ""


async def until(predicate: Callable[[], Any], what: str, limit: float = 15.0) -> Any:
    """Poll `predicate` until it returns something truthy (bounded; `OSError`: not yet); its
    value."""
    return await wait_for(predicate, limit, interval=0.05, retry_on=(OSError,), what=what)


@dataclass
class Rig:
    """`xdscp serve` (subprocess) on etcd, an Envoy on it, and a client for the writes."""

    proc: subprocess.Popen[bytes]
    admin: str
    envoy: EnvoyProcess
    etcd: EtcdClient
    log: Path
    written: list[tuple[bytes, bytes]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """`/metrics` summed by sample name (labels folded)."""
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(_get(f"{self.admin}/metrics")[1]):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        return totals

    def rejected(self) -> float:
        return self.metrics().get("xdscp_registry_rejected_total", 0.0)

    def envoy_endpoints(self) -> set[tuple[str, str]]:
        """(cluster, ip:port) of every host in Envoy's `/clusters`."""
        data = json.loads(self.envoy.admin("/clusters?format=json"))
        return {
            (status["name"], f"{a['address']}:{a['port_value']}")
            for status in data.get("cluster_statuses", [])
            for host in status.get("host_statuses", [])
            for a in [host["address"]["socket_address"]]
        }

    def nodes(self) -> list[dict[str, Any]]:
        return list(json.loads(_get(f"{self.admin}/debug/nodes")[1]))

    def in_sync_without_nack(self) -> bool:
        nodes = self.nodes()
        assert all(not n["last_nack"] for n in nodes), [n["last_nack"] for n in nodes]
        return bool(nodes) and all(t["in_sync"] for n in nodes for t in n["types"].values())


def _serve(
    etcd_url: str, xds: int, admin: int, listener: int, log: Path
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "xdscp", "--log-format", "json", "serve", "--etcd", etcd_url,
            "--xds", f"127.0.0.1:{xds}", "--admin", f"127.0.0.1:{admin}",
            "--listener", f"127.0.0.1:{listener}", "--grpc-target", "gsvc=team/gtarget",
            "--domain-suffix", SUFFIX]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture
async def rig(etcd_server: EtcdServer, tmp_path: Path) -> AsyncIterator[Rig]:
    """Good registrations in etcd, served by `xdscp serve` to an Envoy that holds them all."""
    xds, admin = free_port(), free_port()
    log = tmp_path / "serve.log"
    proc = _serve(etcd_server.url, xds, admin, free_port(), log)
    options = EnvoyBootstrapOptions("hostile", (XdsServer("127.0.0.1", xds),), admin_port=0)
    envoy = EnvoyProcess(envoy_bootstrap(options), tmp_path / "envoy")
    async with EtcdClient(etcd_server.config()) as etcd:
        running = Rig(proc, f"http://127.0.0.1:{admin}", envoy, etcd, log)
        try:
            try:
                for key, value in _good_writes():
                    await etcd.put(key, value)
                await until(lambda: _get(f"{running.admin}/readyz")[0] == 200, "serve ready")
                await asyncio.to_thread(envoy.start)
                await until(lambda: running.envoy_endpoints() >= GOOD_ENDPOINTS, "good in Envoy")
            except Exception as exc:  # say what serve said
                raise AssertionError(f"{exc}\nserve log:\n{log.read_text()[-4000:]}") from exc
            yield running
        finally:
            envoy.stop()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            status = await asyncio.to_thread(proc.wait, 20)
            assert status == 0, log.read_text()[-4000:]


def _oracle_rejections(writes: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """How many rejections the writes cause, and how many services are then served, in an
    in-process RegistryState (the same rules, the same revision order, the same resolver)."""
    state = RegistryState(LAYOUT)
    revision = 0

    def apply(key: bytes, value: bytes, kind: WatchEventType = WatchEventType.PUT) -> int:
        nonlocal revision
        revision += 1
        event = [WatchEvent(kind, key, value, revision)]
        if key.startswith(POLICIES):
            return len(state.apply_policies(event))
        if key.startswith(GO_PREFIX):
            return len(state.apply_grpc_go(TARGET, event))
        return len(state.apply_native(event))

    for key, value in _good_writes():
        apply(key, value)
    services, _ = state.build(_resolve)
    count = sum(apply(key, value) for key, value in writes)
    services, found = state.build(_resolve)
    return count + len(found), len(services)


def _resolve(host: str) -> str | None:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return str(infos[0][4][0]) if infos else None


async def _check_rig(rig: Rig, expected_rejected: float, services: int) -> None:
    """serve up, the counter at `expected_rejected` and no higher, every good endpoint in
    Envoy, Envoy in sync without a NACK."""
    await until(lambda: rig.rejected() >= expected_rejected, "rejections counted")
    await until(lambda: rig.metrics().get("xdscp_registry_services") == services, "published")
    # A fresh good write on every prefix, seen by Envoy: everything before it was applied.
    stamp = str(time.monotonic_ns()).encode()
    await rig.etcd.put(
        ROOT + b"good2/stamp", json.dumps({"address": "127.0.0.1", "port": 21099}).encode()
    )
    await rig.etcd.put(GO_PREFIX + b"stamp-" + stamp, b'{"Op":0,"Addr":"127.0.0.1:22099"}')
    await until(
        lambda: (
            {("good2", "127.0.0.1:21099"), ("gsvc", "127.0.0.1:22099")} <= rig.envoy_endpoints()
        ),
        "stamp",
    )
    await rig.etcd.delete(ROOT + b"good2/stamp")
    await rig.etcd.delete(GO_PREFIX + b"stamp-" + stamp)
    assert rig.proc.poll() is None, rig.log.read_text()[-4000:]
    assert rig.rejected() == expected_rejected
    assert rig.envoy_endpoints() >= GOOD_ENDPOINTS
    await until(rig.in_sync_without_nack, "Envoy in sync, no NACK")


@settings(
    max_examples=20,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a failing batch is shown as is
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(writes=entries)
@example(writes=POISON)
async def test_hostile_entries_never_stop_serve_nor_touch_good_endpoints(
    rig: Rig, writes: list[tuple[bytes, bytes]]
) -> None:
    """Each batch of arbitrary entries is rejected (counted exactly once each on serve's
    /metrics) or served, never at a good registration's expense; Envoy NACKs nothing."""
    count, services = _oracle_rejections(writes)
    before = rig.rejected()
    try:
        for key, value in writes:
            await rig.etcd.put(key, value)
        await _check_rig(rig, before + count, services)
    finally:  # the next batch starts from the good registrations alone
        for key, _ in writes:
            await rig.etcd.delete(key)
    clean = len(GOOD_SERVICES)
    await until(lambda: rig.metrics().get("xdscp_registry_services") == clean, "clean")


async def test_named_poison_cases_end_to_end(rig: Rig) -> None:
    """The issue's reproductions: a 3000-deep value as endpoint and over a valid policy, a
    name with a trailing newline, `GOOD0` beside `good0`, `good1.svc` beside `good1` under the
    suffix `.svc`, keys that are not UTF-8: all refused, counted, and then a new service still
    gets its route (nothing poisons later services); good0 keeps its ring-hash policy."""
    deep = b"[" * 3000 + b"]" * 3000
    bad = [
        (ROOT + b"good0/deep", deep),
        (POLICIES + b"good0", deep),
        (ROOT + b"good-nl\n/x", b'{"address":"127.0.0.1","port":23001}'),
        (ROOT + b"GOOD0/x", b'{"address":"127.0.0.1","port":23002}'),
        (ROOT + b"good1.svc/x", b'{"address":"127.0.0.1","port":23003}'),
        (ROOT + b"good2/\xff", b'{"oops":'),
        (ROOT + b"good2/\xfe", b'{"address":"127.0.0.1","port":23004}'),
    ]
    for key, value in bad:
        await rig.etcd.put(key, value)
    await rig.etcd.put(ROOT + b"later/1", b'{"address":"127.0.0.1","port":23005}')
    await _check_rig(rig, len(bad), len(GOOD_SERVICES) + 1)
    assert ("later", "127.0.0.1:23005") in rig.envoy_endpoints()
    routes = json.loads(rig.envoy.admin("/config_dump?resource=dynamic_route_configs"))
    domains = json.dumps(routes)
    assert '"later"' in domains
    assert "GOOD0" not in domains
    assert "good1.svc.svc" not in domains
    clusters = json.loads(rig.envoy.admin("/config_dump?resource=dynamic_active_clusters"))
    (good0,) = [c["cluster"] for c in clusters["configs"] if c["cluster"]["name"] == "good0"]
    assert "RingHash" in json.dumps(good0["load_balancing_policy"])
    reasons = {
        json.loads(line).get("reason")
        for line in rig.log.read_text().splitlines()
        if '"registry_entry_rejected"' in line
    }
    assert reasons == {"too_deep", "bad_key", "name_clash", "invalid_utf8"}
