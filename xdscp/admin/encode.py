"""The one JSON encoding of the admin server: every route and every event uses `dumps`.

Views hand the server model objects as they are (a `Service`'s `BalancingPolicy`, its
`Endpoint`s); the encoder turns each into the form the model itself defines: `to_mapping()`
where the object has one (policies and their resilience parts: the form etcd stores and the
static file reads), else its dataclass fields. Enums are their values, mappings objects, sets
sorted arrays. A new model field therefore reaches the API without any route learning of it;
a value of any other type is a `TypeError` (the route answers 500, logged), never a guess.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from enum import Enum
from typing import Any


def plain(value: object) -> Any:
    """`value` one level down to JSON data (what `json.dumps` calls for a type it lacks).

    Nested model objects are left for the encoder's next call, so this stays one step."""
    to_mapping = getattr(value, "to_mapping", None)
    if callable(to_mapping):
        return to_mapping()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: object, *, indent: int | None = None) -> str:
    """`value` as JSON text: compact (the C encoder) unless `indent` is given."""
    separators = (",", ":") if indent is None else None
    return json.dumps(value, default=plain, indent=indent, separators=separators)
