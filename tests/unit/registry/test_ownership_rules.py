"""The ownership rule, I/O-free: what a key's holder (and our lease's life) says about a
registration, and how each verdict ends it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdscp.errors import KeyHeldError, KeyRemovedError
from xdscp.registry.ownership import Verdict, ended, judge

OURS = 0x694D


@pytest.mark.parametrize(
    ("holder", "alive", "verdict"),
    [
        (OURS, True, Verdict.HELD),
        (OURS + 1, True, Verdict.TAKEN),  # another registrar's lease
        (0, True, Verdict.TAKEN),  # written by hand, no lease
        (None, True, Verdict.REMOVED),  # deleted while our lease lives: on purpose
        (None, False, Verdict.LEASE_LOST),  # gone with our lease: an outage, a revoke
    ],
)
def test_verdicts(holder: int | None, alive: bool, verdict: Verdict) -> None:
    assert judge(holder, OURS, lease_alive=alive) is verdict


@given(
    holder=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    ours=st.integers(1, 2**63 - 1),
    alive=st.booleans(),
)
def test_only_our_lease_holds_and_only_an_absent_key_is_written_again(
    holder: int | None, ours: int, alive: bool
) -> None:
    """HELD exactly when the key is on our lease; the registrar writes again (LEASE_LOST)
    only a key that is absent while our lease is gone; every other verdict ends it."""
    verdict = judge(holder, ours, lease_alive=alive)
    assert (verdict is Verdict.HELD) == (holder == ours)
    assert (verdict is Verdict.LEASE_LOST) == (holder is None and not alive)
    end = ended("/k", ours, verdict, holder or 0)
    if verdict in (Verdict.HELD, Verdict.LEASE_LOST):
        assert end is None
    elif verdict is Verdict.REMOVED:
        assert isinstance(end, KeyRemovedError)
    else:
        assert isinstance(end, KeyHeldError)
        assert end.holder == holder
