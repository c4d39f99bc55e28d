"""Hostile registry documents: JSON of any shape keyed by the registry's own field names, for
the property tests of the registry's parsers and of a serve fed by them."""

from __future__ import annotations

from hypothesis import strategies as st

FIELDS = ["address", "port", "weight", "Op", "Addr", "Metadata", "lb", "hash_on", "health",
          "priority", "locality", "metadata", "hash_key", "min_ring_size"]  # fmt: skip


def registry_documents(
    leaves: st.SearchStrategy[object], max_leaves: int
) -> st.SearchStrategy[object]:
    """JSON documents of `leaves`: lists, and objects keyed by the registry's field names."""
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5)
        ),
        max_leaves=max_leaves,
    )
