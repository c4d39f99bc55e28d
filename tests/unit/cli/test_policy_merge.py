"""`policy set`'s merge: the flags given win over the stored policy, nothing else changes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdscp.cli.policy_edit import PolicyPatch, changes, merge
from xdscp.errors import ValidationError
from xdscp.model import BalancingPolicy, HashOn, LbPolicy

HASHING = {LbPolicy.RING_HASH, LbPolicy.MAGLEV}


@st.composite
def _stored(draw: st.DrawFn) -> BalancingPolicy:
    lb = draw(st.sampled_from(list(LbPolicy)))
    fields: dict[str, object] = {"lb": lb}
    if lb in HASHING:
        fields["hash_on"] = (HashOn.parse(draw(st.sampled_from(["header:x", "source_ip"]))),)
        fields["hash_balance_factor"] = draw(st.none() | st.integers(100, 500))
    if lb in {LbPolicy.ROUND_ROBIN, LbPolicy.LEAST_REQUEST} and draw(st.booleans()):
        fields["slow_start"] = {"window": draw(st.integers(1, 60))}
    fields["timeout"] = draw(st.none() | st.integers(1, 30))
    return BalancingPolicy(**fields)  # type: ignore[arg-type]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stored(), st.sampled_from(list(LbPolicy)))
def test_any_lb_can_follow_any_stored_policy(stored: BalancingPolicy, lb: LbPolicy) -> None:
    """`--lb X` alone always succeeds: stored fields X cannot use go back to their defaults;
    the fields X can use (the route timeout here) are kept."""
    merged = merge(stored, PolicyPatch({"lb": str(lb)}))
    assert merged.lb is lb
    assert merged.timeout == stored.timeout


def test_a_given_field_is_never_dropped() -> None:
    stored = BalancingPolicy(lb=LbPolicy.MAGLEV)
    with pytest.raises(ValidationError) as info:
        merge(stored, PolicyPatch({"lb": "round_robin", "hash_on": ["header:x"]}))
    assert info.value.field == "hash_on"


def test_changes_are_listed_field_by_field() -> None:
    before = BalancingPolicy(lb=LbPolicy.MAGLEV, hash_on=(HashOn.parse("header:x"),))
    after = merge(before, PolicyPatch({"hash_balance_factor": 150}))
    assert changes(before, after) == ["hash_balance_factor: unset -> 150"]
    assert changes(after, after) == []


def test_a_part_set_or_unset_is_one_change_showing_what_was_asked() -> None:
    """Turning a part on lists what differs from its defaults, not every default field."""
    before = BalancingPolicy()
    on = merge(before, PolicyPatch({}, {"outlier_detection": {"consecutive_5xx": 3}}))
    assert changes(before, on) == ['outlier_detection: unset -> {"consecutive_5xx": 3}']
    more = merge(on, PolicyPatch({}, {"outlier_detection": {"max_ejection_percent": 50}}))
    assert changes(on, more) == ["outlier_detection.max_ejection_percent: 10 -> 50"]
