"""NACK error texts keep both ends: Envoy's reason comes after a dump of the resource."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xdscp.server.status import ERROR_HEAD, ERROR_TAIL, truncate


def test_short_error_is_kept_whole() -> None:
    """An error within the budget is returned unchanged."""
    text = "x" * (ERROR_HEAD + ERROR_TAIL)
    assert truncate(text) == text


def test_long_error_keeps_head_and_reason_at_the_end() -> None:
    """A long proto dump keeps its first and last characters, so the reason survives."""
    text = "Proto constraint validation failed: " + "d" * 5000 + " Duplicate entry of domain web"
    kept = truncate(text)
    assert kept.startswith("Proto constraint validation failed")
    assert kept.endswith("Duplicate entry of domain web")
    assert "chars omitted" in kept
    assert len(kept) < ERROR_HEAD + ERROR_TAIL + 64


@given(st.text(max_size=3000))
def test_truncate_keeps_both_ends(text: str) -> None:
    """Whatever the text, its first ERROR_HEAD and last ERROR_TAIL characters are kept."""
    kept = truncate(text)
    assert kept.startswith(text[:ERROR_HEAD])
    assert kept.endswith(text[-ERROR_TAIL:] if text else "")
