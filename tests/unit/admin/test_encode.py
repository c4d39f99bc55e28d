"""The admin API's one encoder: any policy (drawn field by field from the model) is written
in its `to_mapping` form, which parses back to the same policy; model objects without one
are written by their fields; anything else is a TypeError, never a guess."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from tests.harness.policies import policies
from xdscp.admin.encode import dumps
from xdscp.model import BalancingPolicy, Endpoint, Locality
from xdscp.registry.schema import parse_policy


@given(policies())
def test_any_policy_is_its_mapping_and_reads_back(policy: BalancingPolicy) -> None:
    """Compact and indented alike: the JSON is `to_mapping()`, and parses to the policy."""
    for text in (dumps({"policy": policy}), dumps({"policy": policy}, indent=2)):
        shown = json.loads(text)["policy"]
        assert shown == policy.to_mapping()
        assert parse_policy(json.dumps(shown).encode()) == policy


def test_model_objects_without_a_mapping_form_are_their_fields() -> None:
    """An endpoint: every field, its locality an object, its health the value, metadata an
    object; a set is a sorted array."""
    endpoint = Endpoint("10.0.0.1", 80, locality=Locality("r", "z"), metadata={"b": "2"})
    assert json.loads(dumps([endpoint, frozenset({"b", "a"})])) == [
        {"address": "10.0.0.1", "port": 80, "weight": 1, "priority": 0, "health": "healthy",
         "locality": {"region": "r", "zone": "z", "sub_zone": ""}, "metadata": {"b": "2"},
         "hash_key": None, "load": None},
        ["a", "b"],
    ]  # fmt: skip


def test_an_unknown_type_is_a_type_error() -> None:
    """Not a string of its repr: the route answers 500 (logged)."""
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        dumps({"x": object()})
