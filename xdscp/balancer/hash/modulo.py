"""The naive `hash mod n` balancer, and how many keys move when the host set changes.

`ModuloTable` is what "hash the client IP, take it modulo the number of hosts" gives: even
spread, but adding or removing one host out of n moves about `1 - 1/(n+1)` of all keys, where a
consistent-hash table (ring or Maglev) moves about `1/(n+1)`. `remapped_fraction` measures
that over a deterministic sample of keys, for any two tables with a `lookup(hash)` method.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

from xdscp.balancer.hash.functions import xxh64
from xdscp.balancer.hash.request import client_ip_text
from xdscp.errors import ValidationError

H = TypeVar("H")
H_co = TypeVar("H_co", covariant=True)


class HashLookup(Protocol[H_co]):
    """Anything that maps a 64-bit request hash to a host (ring, Maglev, modulo tables)."""

    def lookup(self, hash_value: int) -> H_co | None:
        """The host for `hash_value`, None when there are no hosts."""
        ...


class ModuloTable(Generic[H]):
    """`hosts[hash % len(hosts)]`: the classic, non-consistent hash balancer."""

    __slots__ = ("_hosts",)

    def __init__(self, hosts: Sequence[H]) -> None:
        self._hosts = list(hosts)

    def lookup(self, hash_value: int) -> H | None:
        """The host for `hash_value`; None when there are no hosts."""
        hosts = self._hosts
        return hosts[hash_value % len(hosts)] if hosts else None

    def pick_for_source_ip(self, source_ip: str) -> H | None:
        """The host for a client address: XXH64 of the IP (port dropped) modulo the host count."""
        return self.lookup(xxh64(client_ip_text(source_ip)))


def sample_hashes(count: int, *, prefix: str = "client-") -> list[int]:
    """`count` deterministic request hashes: XXH64 of `"{prefix}{i}"`."""
    if count < 1:
        raise ValidationError("count", f"must be at least 1, got {count}")
    return [xxh64(f"{prefix}{i}") for i in range(count)]


def remapped_fraction(
    before: HashLookup[object],
    after: HashLookup[object],
    hashes: Iterable[int],
    *,
    same: Callable[[object, object], bool] | None = None,
) -> float:
    """Fraction of `hashes` that `after` sends to a different host than `before`.

    Hosts are compared with `==` unless `same` is given (e.g. comparing endpoint keys).
    """
    equal = same or (lambda a, b: a == b)
    total = moved = 0
    for value in hashes:
        total += 1
        if not equal(before.lookup(value), after.lookup(value)):
            moved += 1
    if total == 0:
        raise ValidationError("hashes", "need at least one hash to compare")
    return moved / total
