"""`NameClaims`, the one name-clash rule: the registry (within etcd) and the merge (across
sources) both refuse a service whose name a client could not tell from one already served."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xdscp.model import NameClaims


def test_case_and_domain_suffixes_clash_and_the_first_keeps_the_name() -> None:
    claims = NameClaims((".SVC",))
    assert claims.claim("web") is None
    assert claims.claim("WEB") == ("web", "web")
    assert claims.claim("web.svc") == ("web", "web.svc")
    assert claims.refused == {"WEB", "web.svc"}
    assert claims.client_names("Api") == ("api", "api.svc")
    claims.release("web")
    assert not claims.holds("web")
    assert claims.claim("web.svc") is None
    assert claims.refused == {"WEB"}


_NAMES = st.sampled_from(["a", "A", "a.svc", "A.SVC", "b", "b.svc", "a.svc.svc"])


@given(st.lists(st.tuples(st.booleans(), _NAMES), max_size=30))
def test_held_names_never_overlap_and_a_free_name_is_granted(
    steps: list[tuple[bool, str]],
) -> None:
    claims = NameClaims((".svc",))
    held: set[str] = set()
    for claim, name in steps:
        if not claim:
            claims.release(name)
            held.discard(name)
            continue
        taken = {n for h in held - {name} for n in claims.client_names(h)}
        refusal = claims.claim(name)
        free = name in held or not taken & set(claims.client_names(name))
        assert (refusal is None) == free
        assert (name in claims.refused) == (refusal is not None)
        if refusal is None:
            held.add(name)
        else:
            holder, client_name = refusal
            assert holder in held
            assert client_name in taken
            assert client_name in claims.client_names(holder)
        assert all(claims.holds(h) for h in held)
