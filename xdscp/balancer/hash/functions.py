"""The 64-bit hash functions Envoy uses for consistent hashing, bit for bit.

- `xxh64`: XXH64 (Envoy's `HashUtil::xxHash64`), used for ring keys by default, for Maglev
  offsets and skips (seeds 0 and 1), and for every request hash policy.
- `xxh64_chain`: Envoy's `HashUtil::xxHash64(absl::Span<absl::string_view>)`, which hashes a list
  of strings by feeding each hash in as the seed of the next (a header with several values).
- `murmur2_64a`: MurmurHash64A as libstdc++ implements `std::hash<std::string>`
  (`_Hash_bytes`, seed 0xc70f6907), Envoy's `MurmurHash::murmurHash2`, used by ring hash with
  `hash_function: MURMUR_HASH_2`. The `mmh3` package is MurmurHash3 and gives other values.
"""

from __future__ import annotations

from collections.abc import Iterable
from struct import Struct

import xxhash

MASK64 = 0xFFFF_FFFF_FFFF_FFFF
STD_HASH_SEED = 0xC70F6907
_MUL = 0xC6A4A7935BD1E995
_WORDS = {n: Struct(f"<{n}Q") for n in range(0, 33)}

_xxh64_intdigest = xxhash.xxh64_intdigest


def _as_bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def xxh64(data: str | bytes, seed: int = 0) -> int:
    """XXH64 of `data` (str is hashed as UTF-8) with `seed`, as an unsigned 64-bit int."""
    return _xxh64_intdigest(data.encode() if isinstance(data, str) else data, seed)


def xxh64_chain(values: Iterable[str | bytes], seed: int = 0) -> int:
    """Hash a sequence of strings the way Envoy hashes a span of string views.

    Each value is hashed with the previous result as its seed; one value gives `xxh64(value)`.
    """
    for value in values:
        seed = _xxh64_intdigest(_as_bytes(value), seed)
    return seed


def _shift_mix(value: int) -> int:
    return value ^ (value >> 47)


def _words(data: bytes, count: int) -> tuple[int, ...]:
    if count <= 32:
        return _WORDS[count].unpack_from(data)
    return Struct(f"<{count}Q").unpack_from(data)


def murmur2_64a(data: str | bytes, seed: int = STD_HASH_SEED) -> int:
    """MurmurHash64A of `data` (str as UTF-8) as libstdc++'s `std::hash<std::string>` computes it.

    Little-endian 8-byte words; the 1-7 trailing bytes are loaded little-endian as well.
    """
    raw = _as_bytes(data)
    length = len(raw)
    mask = MASK64
    mul = _MUL
    h = (seed ^ (length * mul)) & mask
    aligned = length & ~7
    for word in _words(raw, aligned >> 3):
        k = (word * mul) & mask
        k = ((k ^ (k >> 47)) * mul) & mask
        h = ((h ^ k) * mul) & mask
    if length & 7:
        h = ((h ^ int.from_bytes(raw[aligned:], "little")) * mul) & mask
    h = (_shift_mix(h) * mul) & mask
    return _shift_mix(h)


def rotl64(value: int, bits: int = 1) -> int:
    """Rotate a 64-bit value left by `bits` (Envoy combines request hashes with a 1-bit rotate)."""
    bits &= 63
    value &= MASK64
    return ((value << bits) | (value >> (64 - bits))) & MASK64
