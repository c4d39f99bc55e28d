"""What the phase property tests (state of the world and delta) build conversations from."""

from __future__ import annotations

from hypothesis import strategies as st

from xdscp.cache import Resource, Snapshot, TypeUrl

NAMES = ("a", "b", "c")
TYPES = (TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER)
names = st.lists(st.sampled_from((*NAMES, "*")), max_size=3, unique=True).map(tuple)


def world(contents: dict[str, int]) -> Snapshot:
    """A snapshot holding each name at its version, in every type."""
    return Snapshot.of([
        Resource(t, name, b"%s-%d" % (name.encode(), version))
        for t in TypeUrl for name, version in contents.items()
    ])  # fmt: skip


snapshots = st.tuples(
    st.just("snapshot"), st.dictionaries(st.sampled_from(NAMES), st.integers(0, 2))
)
