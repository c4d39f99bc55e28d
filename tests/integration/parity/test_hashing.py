"""Parity of RING_HASH (XX_HASH, MURMUR_HASH_2) and MAGLEV with a real Envoy.

With a request hash the pick is deterministic: every request must reach exactly the backend the
reference predicts from `request_hash` + `choose`. Without one, Envoy draws a random hash, so
picks follow each host's share of the ring / table (checked at 5 sigma, see stats.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2

from tests.harness.parity import Backends, Case, Client, EnvoyFactory, counts, picks_from
from tests.harness.stats import assert_shares, reference
from tests.integration.parity.protos import (
    Ep,
    Maglev,
    RingHash,
    cla,
    cookie_policy,
    enum_cluster,
    header_policy,
    query_policy,
    source_ip_policy,
    typed_cluster,
)

pytestmark = pytest.mark.envoy

WEIGHTS = (1, 2, 3, 1, 5)
KEYS = 250  # distinct request keys per hash policy


def _cluster(name: str, table: str) -> Any:
    if table == "maglev":
        return enum_cluster(name, "MAGLEV")
    if table == "ring_murmur":
        config = cluster_pb2.Cluster.RingHashLbConfig(
            hash_function=cluster_pb2.Cluster.RingHashLbConfig.MURMUR_HASH_2
        )
        return enum_cluster(name, "RING_HASH", ring_hash_lb_config=config)
    return enum_cluster(name, "RING_HASH")


def _endpoints(backends: Backends) -> list[Ep]:
    return [Ep(p, w) for p, w in zip(backends.ports, WEIGHTS, strict=False)]


Request = tuple[str, dict[str, str], str]  # path, headers, client source IP


def _requests(kind: str) -> list[Request]:
    result: list[Request] = []
    for i in range(KEYS):
        path, headers, source = "/", {}, "127.0.0.1"
        if kind == "header":
            headers = {"x-user": f"user-{i}"}
        elif kind == "cookie":
            headers = {"cookie": f"theme=dark; sess=s{i * 7919}"}
        elif kind == "query":
            path = f"/items?page=2&u=q{i}"
        else:
            source = f"127.0.{i // 200}.{i % 200 + 2}"
        result.append((path, headers, source))
    return result


POLICIES: dict[str, Callable[[], Any]] = {
    "header": lambda: header_policy("x-user"),
    "cookie": lambda: cookie_policy("sess"),
    "query": lambda: query_policy("u"),
    "source_ip": source_ip_policy,
}


def _envoy_picks(port: int, requests: Sequence[Request]) -> list[str]:
    picks = []
    clients: dict[str, Client] = {}
    try:
        for path, headers, source in requests:
            if source not in clients:
                clients[source] = Client(port, source_ip=source)
            picks.append(clients[source].get(path, headers))
    finally:
        for client in clients.values():
            client.close()
    return picks


def _predicted(
    case: Case, requests: Sequence[Request], backends: Backends, *, via_route: bool
) -> list[str]:
    ref = reference(case.cluster, case.cla)
    route = case.route_hash_policies if via_route else ()
    picks = []
    for path, headers, source in requests:
        key = ref.request_hash(
            headers={**headers, ":path": path}, source_ip=source, route_policies=route
        )
        assert key is not None
        picks.append(backends.name_of(ref.choose(key)))
    return picks


@pytest.mark.parametrize("table", ["ring_xx", "ring_murmur", "maglev"])
def test_route_hash_policies_pick_exactly(
    envoy_for: EnvoyFactory, backends: Backends, table: str
) -> None:
    """Route-level header, cookie, query-parameter and source-IP hash policies: each of
    250 distinct requests per policy reaches exactly the backend the reference predicts."""
    cases = {
        kind: Case(_cluster(f"{table}-{kind}", table), cla(kind, _endpoints(backends)), [make()])
        for kind, make in POLICIES.items()
    }
    ports = envoy_for(list(cases.values()))
    for kind, case in cases.items():
        requests = _requests(kind)
        want = _predicted(case, requests, backends, via_route=True)
        got = _envoy_picks(ports[case.name], requests)
        mismatches = [(i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
        assert not mismatches, (kind, len(mismatches), mismatches[:5])
        assert len(set(got)) >= 4, (kind, counts(got))


def _typed(name: str, table: str, policies: Sequence[Any]) -> Any:
    if table == "maglev":
        config: Any = Maglev()
    else:
        murmur = table == "ring_murmur"
        config = RingHash(hash_function=RingHash.MURMUR_HASH_2 if murmur else RingHash.XX_HASH)
    config.consistent_hashing_lb_config.hash_policy.extend(policies)
    return typed_cluster(name, config)


@pytest.mark.parametrize("table", ["ring_xx", "ring_murmur", "maglev"])
def test_cluster_hash_policy_overrides_route(
    envoy_for: EnvoyFactory, backends: Backends, table: str
) -> None:
    """A hash policy in the typed config's `consistent_hashing_lb_config` (CDS only) decides
    the pick even when the route hashes on another header: every request matches the
    reference, which hashes with the cluster's policy."""
    cluster = _typed(f"cds-{table}", table, [cookie_policy("sess"), header_policy("x-user")])
    case = Case(cluster, cla("cds", _endpoints(backends)), [header_policy("x-route")])
    requests = [
        ("/", {"x-user": f"u{i}", "cookie": f"sess={i % 7}", "x-route": f"r{i % 3}"}, "127.0.0.1")
        for i in range(KEYS)
    ]
    want = _predicted(case, requests, backends, via_route=False)
    got = _envoy_picks(envoy_for([case])[case.name], requests)
    assert got == want
    assert len(set(got)) >= 4, counts(got)


@pytest.mark.parametrize("table", ["ring_xx", "maglev"])
def test_no_hash_is_weighted_random(
    envoy_for: EnvoyFactory, backends: Backends, table: str
) -> None:
    """No hash policy: Envoy picks a random hash, so shares follow the reference's table
    shares (weights 1:2:3:1:5) within 5 sigma at n=3000 — and not a uniform split."""
    case = Case(_cluster(f"wr-{table}", table), cla("wr", _endpoints(backends)))
    ref = reference(case.cluster, case.cla)
    predicted = {backends.name_of(h): s for h, s in ref.table_shares().items()}  # type: ignore[attr-defined]
    observed = counts(picks_from(envoy_for([case])[case.name], 3000))
    uniform = dict.fromkeys(predicted, 1 / len(predicted))
    assert_shares(observed, predicted, 3000, alternative=uniform)
