"""Option values several commands read, refused with click's usage errors."""

from __future__ import annotations

import click


def key_values(values: tuple[str, ...], option: str = "--metadata") -> dict[str, str]:
    """`KEY=VALUE` options as a mapping (a later key wins); `KEY` without `=` is refused."""
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint=option)
        pairs[key] = val
    return pairs
