"""Replicas serving one publisher's weights: the record's form, and `impose` in the pipeline
(a record replaces the loop's own weights; its removal gives them back). The election and the
watch run against a real etcd in tests/integration/etcd/test_shared_weights.py."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.cache import Snapshot
from xdscp.errors import ValidationError
from xdscp.load import LoadSample
from xdscp.model import (
    UINT32_MAX,
    AdaptiveSettings,
    BalancingPolicy,
    ClientKind,
    Endpoint,
    LbPolicy,
    Service,
)
from xdscp.plane.pipeline import Pipeline
from xdscp.plane.shared_weights import encode_weights, parse_weights, weights_prefix
from xdscp.translate import translator_for

POLICY = BalancingPolicy(
    lb=LbPolicy.WEIGHTED_ROUND_ROBIN,
    adaptive_weights=AdaptiveSettings(min_push_interval=1.0, max_step=100.0, smoothing=1.0),
)
CAPACITY = {"10.0.0.1:80": 100.0, "10.0.0.2:80": 200.0, "10.0.0.3:80": 400.0}


def _pipeline() -> Pipeline:
    pipe = Pipeline(("static",), {kind: translator_for(kind) for kind in ClientKind})
    endpoints = tuple(Endpoint(f"10.0.0.{i}", 80) for i in (1, 2, 3))
    pipe.publish(0, {"web": Service("web", endpoints, POLICY)})
    pipe.merge()
    return pipe


def _snapshot(pipe: Pipeline, kind: ClientKind) -> Snapshot:
    built = pipe.build(kind)
    assert built is not None
    return built.result.snapshot


def _tick(pipe: Pipeline, now: float) -> frozenset[str]:
    """Each endpoint at half its capacity: the estimates are the capacities."""
    samples = [LoadSample(k, now, c / 2, 0.5) for k, c in CAPACITY.items()]
    return pipe.apply_loads({"web": samples}, now, 0.0)


weights = st.dictionaries(
    st.sampled_from(["10.0.0.1:80", "10.0.0.2:80", "[::1]:80"]), st.integers(1, UINT32_MAX)
)


@given(weights)
def test_records_round_trip_as_the_same_bytes(found: dict[str, int]) -> None:
    assert parse_weights(encode_weights(found)) == found
    assert encode_weights(found) == encode_weights(dict(reversed(list(found.items()))))


@pytest.mark.parametrize(
    "raw",
    [b"nope", b"[]", b'{"weights": 3}', b'{"weights": {"a:1": 0}}', b'{"weights": {"a:1": 1.5}}',
     b'{"weights": {"": 1}}', json.dumps({"weights": {"a:1": UINT32_MAX + 1}}).encode()],
)  # fmt: skip
def test_a_bad_record_is_refused(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_weights(raw)


def test_the_prefix_sits_beside_the_registry() -> None:
    assert weights_prefix("/xdscp/services/") == "/xdscp/_weights/"


def test_an_imposed_record_is_served_and_its_removal_gives_the_loops_back() -> None:
    """Another replica's decision replaces this one's (same bytes as that replica's); gone,
    this replica's own loop is served again."""
    pipe = _pipeline()
    for i in range(6):
        _tick(pipe, float(i))
    own = dict(pipe.weights.weights("web") or {})
    record = {"10.0.0.1:80": 300, "10.0.0.2:80": 600, "10.0.0.3:80": 1000}
    assert pipe.impose_weights("web", record) == {"web"}
    assert pipe.weights.weights("web") == record
    assert _tick(pipe, 6.0) == frozenset()  # this replica's loop no longer changes it
    assert pipe.impose_weights("web", record) == frozenset()  # the same record: no push
    elsewhere = _pipeline()
    elsewhere.impose_weights("web", record)
    for kind in ClientKind:
        assert _snapshot(pipe, kind).versions == _snapshot(elsewhere, kind).versions
    assert pipe.impose_weights("web", None) == {"web"}
    assert pipe.weights.weights("web") == own
    assert pipe.impose_weights("other", record) == frozenset()  # not adaptive here
