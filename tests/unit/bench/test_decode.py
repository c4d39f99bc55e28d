"""Resource names and change markers read from the benchmark's serialized resources."""

from __future__ import annotations

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from bench.fanout.decode import Decoder, ResponseMemo, marker_bytes
from bench.fanout.resources import (
    CLUSTER_TYPE,
    CLUSTERS,
    ENDPOINT_TYPE,
    cds_response,
    change_address,
    changed_cluster,
    eds_response,
    endpoints_of,
)


def values(data: bytes) -> list[bytes]:
    """The Any values of a serialized DiscoveryResponse."""
    return [item.value for item in discovery_pb2.DiscoveryResponse.FromString(data).resources]


def test_names_of_clusters_and_clas() -> None:
    """Both responses name svc-00..svc-49 in order."""
    decoder = Decoder()
    expected = [f"svc-{i:02d}" for i in range(CLUSTERS)]
    assert decoder.names(CLUSTER_TYPE, values(cds_response())) == expected
    assert decoder.names(ENDPOINT_TYPE, values(eds_response(0))) == expected


@pytest.mark.parametrize(
    ("armed", "change", "found"),
    [
        ((1,), 0, set()),
        ((1,), 1, {1}),
        ((1, 12), 1, {1}),  # 127.0.200.1 must not match 127.0.200.12 or the reverse
        ((1, 12), 12, {1, 12}),  # change 12 still holds change 1's address on another cluster
        ((2,), 1, set()),
    ],
)
def test_markers(armed: tuple[int, ...], change: int, found: set[int]) -> None:
    """Only armed changes whose address is present in a CLA are reported."""
    decoder = Decoder()
    for k in armed:
        decoder.arm(k)
    assert decoder.markers(ENDPOINT_TYPE, values(eds_response(change))) == found
    assert decoder.markers(CLUSTER_TYPE, values(cds_response())) == frozenset()


def test_change_moves_one_endpoint_of_one_cluster() -> None:
    """Change k differs from change k-1 in exactly one endpoint of changed_cluster(k)."""
    for k in (1, 2, 50, 51):
        diff = [i for i in range(CLUSTERS) if endpoints_of(i, k) != endpoints_of(i, k - 1)]
        assert diff == [changed_cluster(k)]
        assert endpoints_of(changed_cluster(k), k)[0][0] == change_address(k)


def test_marker_bytes_carry_length_prefix() -> None:
    """The marker is the length byte followed by the address text."""
    assert marker_bytes(3) == b"\x0b127.0.200.3"
    with pytest.raises(ValueError, match="outside"):
        change_address(0)


def test_response_memo_parses_and_rearms() -> None:
    """A response parses to its type, version, nonce, names; arming re-reads markers."""
    memo = ResponseMemo()
    raw = eds_response(3)
    parsed = memo.parse(raw)
    assert (parsed.type_url, parsed.version, parsed.nonce) == (ENDPOINT_TYPE, "e3", "e3")
    assert parsed.names == tuple(f"svc-{i:02d}" for i in range(CLUSTERS))
    assert parsed.markers == frozenset()
    assert memo.parse(raw) is parsed  # memoized
    memo.arm(3)
    assert memo.parse(raw).markers == frozenset({3})
    assert memo.parse(cds_response()).type_url == CLUSTER_TYPE
