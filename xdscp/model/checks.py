"""Value checks every model constructor uses: each returns the value (normalised) or raises
`ValidationError` naming the field and what it accepts."""

from __future__ import annotations

import ipaddress
import math
import re
from enum import StrEnum
from typing import TypeVar

from xdscp.errors import ValidationError

UINT32_MAX = 0xFFFFFFFF
# Matched with `fullmatch` (never `match` with `$`, which also matches before a final "\n").
_SERVICE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,200}[A-Za-z0-9])?")


E = TypeVar("E", bound=StrEnum)


def choice(kind: type[E], field_name: str, value: object, *, dashes: bool = False) -> E:
    """`value` as one of `kind`'s values, any case (with `dashes`, `-` reads as `_`);
    an unknown value is refused with the allowed set."""
    text = str(value).lower()
    try:
        return kind(text.replace("-", "_") if dashes else text)
    except ValueError:
        raise ValidationError(
            field_name, f"must be one of {', '.join(kind)}, got {value!r}"
        ) from None


def check_int(field_name: str, value: object, low: int, high: int) -> int:
    """Return `value` if it is an int in [low, high], else raise naming the field and range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field_name, f"must be an integer in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise ValidationError(field_name, f"must be in [{low}, {high}], got {value}")
    return value


def check_float(field_name: str, value: object, low: float, high: float) -> float:
    """Return `value` as a float if it is a finite number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field_name, f"must be a number in [{low}, {high}], got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ValidationError(field_name, f"must be in [{low}, {high}], got {value}")
    return number


def is_prime(n: int) -> bool:
    """Deterministic primality for the table sizes Envoy accepts (n <= 5,000,011)."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


def check_ip(field_name: str, value: object) -> str:
    """Return the normalised IP literal; hostnames are rejected (Envoy and gRPC NACK them)."""
    if not isinstance(value, str):
        raise ValidationError(field_name, f"must be an IPv4 or IPv6 literal, got {value!r}")
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise ValidationError(
            field_name, f"must be an IPv4 or IPv6 literal, got {value!r}"
        ) from None


def check_service_name(value: object, field_name: str = "service") -> str:
    """Service names double as cluster names and gRPC targets: letters, digits, . _ -."""
    if not isinstance(value, str) or not _SERVICE_NAME.fullmatch(value):
        raise ValidationError(
            field_name,
            "must be 1-202 characters of letters, digits, '.', '_', '-', "
            f"starting and ending with a letter or digit, got {value!r}",
        )
    return value
