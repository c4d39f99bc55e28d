"""Pure answer mapping: address order and dedupe, TTL clamp, SRV weights and priorities."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xdscp.dns import RefreshPolicy
from xdscp.dns.records import (
    ZERO_WEIGHT_SCALE,
    SrvRecord,
    address_endpoints,
    clamp_interval,
    order_addresses,
    srv_endpoints,
    srv_priority_ranks,
    srv_weights,
)
from xdscp.model import MAX_PRIORITY, UINT32_MAX, Locality


def test_addresses_are_normalised_deduplicated_and_ordered() -> None:
    """IPv4 first in numeric (not text) order, then IPv6; equal spellings collapse."""
    ordered = order_addresses(["10.0.0.10", "::0001", "10.0.0.9", "::1", "10.0.0.9", "fe80::"])
    assert ordered == ["10.0.0.9", "10.0.0.10", "::1", "fe80::"]


@given(st.lists(st.ip_addresses().map(str), max_size=20), st.randoms())
def test_order_does_not_depend_on_answer_order(addresses: list[str], rnd: object) -> None:
    """Any permutation of an answer gives the same endpoints (so no spurious publish)."""
    shuffled = list(addresses)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert address_endpoints(addresses, 80) == address_endpoints(shuffled, 80)
    assert len(address_endpoints(addresses, 80)) == len(set(order_addresses(addresses)))


def test_a_endpoints_carry_port_weight_and_locality() -> None:
    """A/AAAA endpoints get the declared port, weight and locality, priority 0."""
    (endpoint,) = address_endpoints(["10.0.0.1"], 8080, 7, Locality("eu"))
    assert (endpoint.key, endpoint.weight, endpoint.locality, endpoint.priority) == (
        "10.0.0.1:8080",
        7,
        Locality("eu"),
        0,
    )


def test_ttl_is_clamped_to_the_refresh_interval() -> None:
    """Below min -> min, above max -> max, in between -> the TTL itself."""
    policy = RefreshPolicy(min_interval=30, max_interval=300)
    assert [clamp_interval(t, policy) for t in (0, 29.9, 30, 120, 300, 86_400)] == [
        30,
        30,
        30,
        120,
        300,
        300,
    ]


def test_srv_weights_without_zero_are_kept() -> None:
    """Non-zero SRV weights are used as they are."""
    assert srv_weights([10, 20, 70]) == [10, 20, 70]


def test_all_zero_srv_weights_become_equal() -> None:
    """RFC 2782: all-zero weights mean equal chance; Envoy needs >= 1, so all become 1."""
    assert srv_weights([0, 0, 0]) == [1, 1, 1]


def test_zero_weight_beside_others_keeps_a_small_chance() -> None:
    """A weight-0 target gets 1 while the others are scaled by ZERO_WEIGHT_SCALE."""
    assert srv_weights([0, 10, 20]) == [1, 10 * ZERO_WEIGHT_SCALE, 20 * ZERO_WEIGHT_SCALE]


def test_zero_weight_scale_never_overflows_uint32() -> None:
    """With huge weight sums the scale is lowered so the total stays within 2^32-1."""
    weights = [0] + [65535] * 1000
    mapped = srv_weights(weights)
    assert sum(mapped) <= UINT32_MAX
    assert min(mapped) == 1
    assert mapped[1] > 1


def test_srv_priorities_map_to_ranks_capped() -> None:
    """Distinct priorities in ascending order become 0..n-1, beyond MAX_PRIORITY capped."""
    assert srv_priority_ranks([20, 10, 20, 65535]) == {10: 0, 20: 1, 65535: 2}
    ranks = srv_priority_ranks(range(0, 400, 2))
    assert ranks[0] == 0
    assert ranks[2 * MAX_PRIORITY] == MAX_PRIORITY
    assert ranks[398] == MAX_PRIORITY


def test_srv_endpoints_weights_priorities_and_ports() -> None:
    """Each target address gets the SRV port, mapped weight and priority rank."""
    records = [
        SrvRecord(10, 0, 8080, "a.test."),
        SrvRecord(10, 5, 8081, "b.test."),
        SrvRecord(30, 0, 9000, "c.test."),
    ]
    addresses = {"a.test.": ["10.0.0.1"], "b.test.": ["10.0.0.2", "::2"], "c.test.": ["10.0.0.3"]}
    got = [(e.key, e.weight, e.priority) for e in srv_endpoints(records, addresses)]
    assert got == [
        ("10.0.0.1:8080", 1, 0),
        ("10.0.0.2:8081", 5 * ZERO_WEIGHT_SCALE, 0),
        ("[::2]:8081", 5 * ZERO_WEIGHT_SCALE, 0),
        ("10.0.0.3:9000", 1, 1),
    ]


def test_srv_unresolved_dot_and_port_zero_targets_are_skipped() -> None:
    """Targets without addresses, the `.` target and port-0 records give no endpoint."""
    records = [
        SrvRecord(0, 1, 80, "."),
        SrvRecord(0, 1, 0, "a.test."),
        SrvRecord(0, 1, 81, "gone.test."),
        SrvRecord(0, 1, 82, "a.test."),
    ]
    got = srv_endpoints(records, {"a.test.": ["10.0.0.1"]})
    assert [e.key for e in got] == ["10.0.0.1:82"]


def test_srv_priorities_stay_contiguous_when_a_level_does_not_resolve() -> None:
    """If every target of the best SRV priority is gone, the next level becomes priority 0."""
    records = [SrvRecord(1, 1, 80, "gone.test."), SrvRecord(2, 1, 80, "b.test."),
               SrvRecord(3, 1, 80, "c.test.")]  # fmt: skip
    got = srv_endpoints(records, {"b.test.": ["10.0.0.2"], "c.test.": ["10.0.0.3"]})
    assert [(e.key, e.priority) for e in got] == [("10.0.0.2:80", 0), ("10.0.0.3:80", 1)]


def test_srv_duplicate_addresses_merge() -> None:
    """One address:port reached twice keeps the best priority and sums its weights there."""
    records = [
        SrvRecord(1, 3, 80, "a.test."),
        SrvRecord(1, 4, 80, "alias.test."),
        SrvRecord(2, 9, 80, "a.test."),
    ]
    addresses = {"a.test.": ["10.0.0.1"], "alias.test.": ["10.0.0.1"]}
    (endpoint,) = srv_endpoints(records, addresses, Locality("eu"))
    assert (endpoint.weight, endpoint.priority, endpoint.locality) == (7, 0, Locality("eu"))


def test_srv_record_order_does_not_matter() -> None:
    """The same SRV set in any order maps to the same endpoints."""
    records = [SrvRecord(p, w, 80 + w, f"t{w}.test.") for p, w in ((1, 1), (2, 2), (1, 3))]
    addresses = {f"t{w}.test.": [f"10.0.0.{w}"] for w in (1, 2, 3)}
    assert srv_endpoints(records, addresses) == srv_endpoints(records[::-1], addresses)


_records = st.lists(
    st.builds(
        SrvRecord,
        priority=st.integers(0, 65535),
        weight=st.integers(0, 65535),
        port=st.integers(0, 65535),
        target=st.sampled_from(["a.test.", "b.test.", "c.test.", "."]),
    ),
    max_size=300,
)
_addresses = st.fixed_dictionaries(
    {
        "a.test.": st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2", "::1"]), max_size=3),
        "b.test.": st.lists(st.sampled_from(["10.0.0.2", "10.0.0.3"]), max_size=2),
    }
)


@given(_records, _addresses)
def test_srv_mapping_invariants(records: list[SrvRecord], addresses: dict[str, list[str]]) -> None:
    """Any SRV answer maps to valid, unique, ordered endpoints that Envoy accepts."""
    endpoints = srv_endpoints(records, addresses)
    keys = [(e.address, e.port) for e in endpoints]
    assert len(keys) == len(set(keys))
    assert all(1 <= e.weight <= UINT32_MAX and 0 <= e.priority <= MAX_PRIORITY for e in endpoints)
    assert [e.priority for e in endpoints] == sorted(e.priority for e in endpoints)
    reachable = {
        (a, r.port)
        for r in records
        if r.port and r.target != "."
        for a in order_addresses(addresses.get(r.target, ()))
    }
    assert set(keys) == reachable
    priorities = {e.priority for e in endpoints}
    assert priorities == set(range(len(priorities)))  # contiguous from 0
