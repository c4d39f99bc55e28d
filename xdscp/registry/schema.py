"""The registry's formats in etcd: parse (strictly) and write.

Key layout (defaults; both prefixes are configurable):

- native endpoints: `/xdscp/services/<service>/<endpoint-id>` -> JSON object
  `{"address": "10.0.0.7" | "host.example", "port": 8080, "weight": 1,
  "locality": {"region": "", "zone": "", "sub_zone": ""}, "priority": 0, "health": "healthy",
  "metadata": {"k": "v"}, "hash_key": null, "load": {"utilization": 0.4, "rps": 120,
  "at": 1765000000.0}}`; only `address` and `port` are required;
- grpc-go naming endpoints (written by `go.etcd.io/etcd/client/v3/naming/endpoints`):
  `<target>/<id>` -> `{"Op":0,"Addr":"host:port","Metadata":...}`; `Op` 1 means deleted;
  `weight`, `region`, `zone`, `sub_zone`, `priority`, `health`, `hash_key` and `load` are read
  from `Metadata` when it is an object carrying them, its other string members become metadata
  (the Go resolver carries `Metadata` as any JSON, so these round-trip);
- balancing policies: `/xdscp/policies/<service>` -> JSON object of `BalancingPolicy` fields,
  with `hash_on` a list of `"header:x-user"`-style strings;
- routes: `/xdscp/routes/<service>` -> JSON object `{"routes": [...]}`, the list in the
  `RouteTable.from_list` form (`xdscp.model.routes`).

Input is bytes until proven otherwise: a key is checked for length (`MAX_KEY_BYTES`), strict
UTF-8 and control characters before it is split; a value for size (`max_value_bytes`),
strict UTF-8 and JSON nesting depth (`MAX_JSON_DEPTH`, scanned on the bytes) before it is
parsed, and its strings must be Unicode text (no unpaired surrogate escapes). Names follow
the model's full-match rules (no trailing newline, no control characters). The byte-level
checks are `codec.py`.

Every parser raises `ValidationError` whose `field` names what was wrong; `rejection_reason`
turns that into the bounded label of `xdscp_registry_rejected_total`. The labels:

- `key_too_long`: key longer than `MAX_KEY_BYTES` (1024) bytes;
- `invalid_utf8`: key or value not strict UTF-8;
- `bad_key`: key not shaped `<prefix><service>/<id>` (`<target>/<id>`, `<policies><service>`),
  a service name breaking the name rules, control characters, an id over 512 characters;
- `oversized`: value larger than `max_value_bytes` (64 KiB);
- `too_deep`: JSON nested deeper than `MAX_JSON_DEPTH` (64);
- `invalid_json`: not JSON, or a string that is not Unicode text (an unpaired surrogate);
- `wrong_type`: JSON but not an object;
- `invalid_address`: `address` / `Addr` missing, or neither an IP literal nor a hostname;
- `invalid_port`, `invalid_weight`, `invalid_priority`, `invalid_health`, `invalid_op`: that
  field missing its type or range;
- `invalid_field`: another field (`locality`, `metadata`, `hash_key`) malformed;
- `invalid_policy`: a policy the model rejects (the last good policy is kept);
- `invalid_routes`: a route table the model rejects (the last good routes are kept);
- `unresolvable`: a hostname that does not resolve (tried again at every resolve interval);
- `invalid_load`: a registration's `load` (native) or `Metadata.load` (grpc-go) malformed:
  NaN, infinite, negative or absurd; the endpoint is kept, without its load;
- `duplicate`: `ip:port` already registered under a smaller key of the same service;
- `name_clash`: a service name that equals an earlier service's in a client's eyes (case,
  domain suffixes); the earlier keeps serving.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from xdscp.errors import ValidationError
from xdscp.model import (
    MAX_PRIORITY,
    UINT32_MAX,
    BalancingPolicy,
    HashOn,
    Health,
    Locality,
    ReportedLoad,
    RouteTable,
    check_int,
    check_service_name,
    format_host_port,
    parse_health,
    parse_host_port,
)
from xdscp.registry.codec import MAX_VALUE_BYTES, load_object

MAX_HOST_LENGTH = 253
MAX_ID_LENGTH = 512
REJECTION_REASONS = (
    "key_too_long", "invalid_utf8", "bad_key", "oversized", "too_deep", "invalid_json",
    "wrong_type", "invalid_address", "invalid_port", "invalid_weight", "invalid_priority",
    "invalid_health", "invalid_op", "invalid_field", "invalid_policy", "unresolvable",
    "duplicate", "name_clash", "invalid_load", "invalid_routes",
)  # fmt: skip
"""Every label `xdscp_registry_rejected_total{reason}` can carry (documented above)."""
_REASONS = {
    "key": "bad_key",
    "key_length": "key_too_long",
    "utf8": "invalid_utf8",
    "depth": "too_deep",
    "value": "oversized",
    "json": "invalid_json",
    "type": "wrong_type",
    "address": "invalid_address",
    "Addr": "invalid_address",
    "port": "invalid_port",
    "weight": "invalid_weight",
    "health": "invalid_health",
    "priority": "invalid_priority",
    "Op": "invalid_op",
    "policy": "invalid_policy",
    "load": "invalid_load",
    "routes": "invalid_routes",
}
_GO_SPECIAL = ("weight", "region", "zone", "sub_zone", "priority", "health", "hash_key", "load")
_EMPTY: Mapping[str, str] = MappingProxyType({})


def rejection_reason(error: ValidationError) -> str:
    """The metric label for a rejected entry (a small fixed set)."""
    return _REASONS.get(error.field.split(".")[0].partition("[")[0], "invalid_field")


@dataclass(frozen=True, slots=True)
class Registration:
    """One parsed registration. `host` may still be a hostname (resolved before the model)."""

    service: str
    endpoint_id: str
    host: str
    port: int
    weight: int = 1
    locality: Locality = field(default_factory=Locality)
    priority: int = 0
    health: Health = Health.HEALTHY
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    hash_key: str | None = None
    load: ReportedLoad | None = None
    load_refused: str | None = None  # why a given load was refused (the endpoint is kept)


def _load(value: object) -> tuple[ReportedLoad | None, str | None]:
    """The registration's own load, or why it was refused: a bad load never costs the
    endpoint."""
    if value is None:
        return None, None
    try:
        return ReportedLoad.from_mapping(value), None
    except ValidationError as exc:
        return None, str(exc)


_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def _string(field_name: str, value: object, *, max_length: int = 256) -> str:
    if not isinstance(value, str) or len(value) > max_length:
        raise ValidationError(field_name, f"must be a string of at most {max_length} characters")
    return value


def _host(field_name: str, value: object) -> str:
    """An IP literal (IPv6 optionally bracketed, no zone) or a DNS hostname of LDH labels
    whose last label is not all digits."""
    host = _string(field_name, value, max_length=MAX_HOST_LENGTH + 2).strip()
    bare = host.removeprefix("[").removesuffix("]")
    if bare != host and ":" not in bare:
        raise ValidationError(field_name, f"brackets are for IPv6 addresses, got {value!r}")
    try:  # inet_pton: strict (no zone, no leading zeros, no short forms) and C-fast
        socket.inet_pton(socket.AF_INET6 if ":" in bare else socket.AF_INET, bare)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        pass
    else:
        return bare
    labels = bare.removesuffix(".").split(".")
    if len(bare) > MAX_HOST_LENGTH or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValidationError(field_name, f"must be an IP address or hostname, got {value!r}")
    if labels[-1].isdigit():  # `10.1`, `10.0.0.256`: inet_aton would make them some IP
        raise ValidationError(field_name, f"is neither an IP address nor a hostname: {value!r}")
    return bare


def is_ip_literal(host: str) -> bool:
    """For a host `_host` accepted: True when it is an IP literal (IPv6 has a colon; IPv4's
    last label is all digits, which `_host` refuses for hostnames). No parsing."""
    return ":" in host or host.rpartition(".")[2].isdigit()


def _string_map(field_name: str, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError(field_name, "must be an object of string values")
    return dict(value)


def _locality(value: object) -> Locality:
    parts = _string_map("locality", value)
    unknown = parts.keys() - {"region", "zone", "sub_zone"}
    if unknown:
        raise ValidationError("locality", f"unknown fields {sorted(unknown)}")
    return Locality(parts.get("region", ""), parts.get("zone", ""), parts.get("sub_zone", ""))


def _hash_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ValidationError("hash_key", "must be a non-empty string of at most 256 characters")
    return value


def parse_native_key(key: str, root: str) -> tuple[str, str]:
    """Split `<root><service>/<endpoint-id>` into (service, endpoint id)."""
    rest = key.removeprefix(root)
    service, sep, endpoint_id = rest.partition("/")
    if not key.startswith(root) or not sep or not endpoint_id or "/" in endpoint_id:
        raise ValidationError("key", f"must look like {root}<service>/<endpoint-id>")
    if len(endpoint_id) > MAX_ID_LENGTH:
        raise ValidationError("key", f"endpoint id longer than {MAX_ID_LENGTH} characters")
    try:
        check_service_name(service)
    except ValidationError as exc:
        raise ValidationError("key", f"service name {exc.message}") from None
    return service, endpoint_id


def parse_native_value(
    service: str, endpoint_id: str, raw: bytes, *, max_bytes: int = MAX_VALUE_BYTES
) -> Registration:
    """Parse a native registration value."""
    data = load_object(raw, max_bytes)
    if "address" not in data or "port" not in data:
        raise ValidationError("address", "address and port are required")
    return Registration(
        service=service,
        endpoint_id=endpoint_id,
        host=_host("address", data["address"]),
        port=check_int("port", data["port"], 1, 65535),
        weight=check_int("weight", data.get("weight", 1), 1, UINT32_MAX),
        locality=_locality(data.get("locality")),
        priority=check_int("priority", data.get("priority", 0), 0, MAX_PRIORITY),
        health=parse_health(data.get("health", "healthy")),
        metadata=MappingProxyType(_string_map("metadata", data.get("metadata"))),
        hash_key=_hash_key(data.get("hash_key")),
        load=(load := _load(data.get("load")))[0],
        load_refused=load[1],
    )


def parse_grpc_go_key(key: str, prefix: str) -> str:
    """The endpoint id of `<target>/<id>` (`prefix` is `<target>/`)."""
    endpoint_id = key.removeprefix(prefix)
    if not key.startswith(prefix) or not endpoint_id:
        raise ValidationError("key", f"must look like {prefix}<id>")
    if len(endpoint_id) > MAX_ID_LENGTH:
        raise ValidationError("key", f"id longer than {MAX_ID_LENGTH} characters")
    return endpoint_id


def split_host_port(field_name: str, value: object) -> tuple[str, int]:
    """Split `host:port` / `[v6]:port`."""
    text = _string(field_name, value, max_length=MAX_HOST_LENGTH + 8)
    host, port = parse_host_port(text, field=field_name)
    return _host(field_name, host), port


def parse_grpc_go_value(
    service: str, endpoint_id: str, raw: bytes, *, max_bytes: int = MAX_VALUE_BYTES
) -> Registration | None:
    """Parse a grpc-go naming value; None when its `Op` says the endpoint is deleted."""
    data = load_object(raw, max_bytes)
    op = check_int("Op", data.get("Op", 0), 0, 1)
    if op == 1:
        return None
    host, port = split_host_port("Addr", data.get("Addr"))
    meta = data.get("Metadata")
    extra: dict[str, Any] = meta if isinstance(meta, dict) else {}
    locality = Locality(
        _string("locality.region", extra.get("region", "")),
        _string("locality.zone", extra.get("zone", "")),
        _string("locality.sub_zone", extra.get("sub_zone", "")),
    )
    metadata = {k: v for k, v in extra.items() if isinstance(v, str) and k not in _GO_SPECIAL and k}
    return Registration(
        service=service,
        endpoint_id=endpoint_id,
        host=host,
        port=port,
        weight=check_int("weight", extra.get("weight", 1), 1, UINT32_MAX),
        locality=locality,
        priority=check_int("priority", extra.get("priority", 0), 0, MAX_PRIORITY),
        health=parse_health(extra.get("health", "healthy")),
        metadata=MappingProxyType(metadata),
        hash_key=_hash_key(extra.get("hash_key")),
        load=(load := _load(extra.get("load")))[0],
        load_refused=load[1],
    )


def native_value(registration: Registration) -> bytes:
    """The native JSON value for a registration (what `xdscp register` writes)."""
    data: dict[str, Any] = {
        "address": registration.host,
        "port": registration.port,
        "weight": registration.weight,
        "locality": dataclasses.asdict(registration.locality),
        "priority": registration.priority,
        "health": str(registration.health),
        "metadata": dict(sorted(registration.metadata.items())),
    }
    if registration.hash_key is not None:
        data["hash_key"] = registration.hash_key
    if registration.load is not None:
        data["load"] = registration.load.to_mapping()
    return json.dumps(data, separators=(",", ":")).encode()


def grpc_go_value(registration: Registration) -> bytes:
    """The grpc-go naming value, byte for byte as the Go endpoints Manager writes it
    (`"Metadata":null` when there is nothing to carry)."""
    meta: dict[str, Any] = dict(sorted(registration.metadata.items()))
    if registration.weight != 1:
        meta["weight"] = registration.weight
    if registration.priority:
        meta["priority"] = registration.priority
    for name in ("region", "zone", "sub_zone"):
        if getattr(registration.locality, name):
            meta[name] = getattr(registration.locality, name)
    if registration.health is not Health.HEALTHY:
        meta["health"] = str(registration.health)
    if registration.hash_key is not None:
        meta["hash_key"] = registration.hash_key
    if registration.load is not None:
        meta["load"] = registration.load.to_mapping()
    data: dict[str, Any] = {
        "Op": 0,
        "Addr": format_host_port(registration.host, registration.port),
        "Metadata": dict(sorted(meta.items())) if meta else None,
    }
    return json.dumps(data, separators=(",", ":")).encode()


_POLICY_FIELDS = frozenset(f.name for f in dataclasses.fields(BalancingPolicy))


def parse_policy(raw: bytes, *, max_bytes: int = MAX_VALUE_BYTES) -> BalancingPolicy:
    """Parse a policy value, validated by the model's rules."""
    data = load_object(raw, max_bytes)
    unknown = data.keys() - _POLICY_FIELDS
    if unknown:
        raise ValidationError("policy", f"unknown fields {sorted(unknown)}")
    hash_on = data.pop("hash_on", [])
    if not isinstance(hash_on, list) or not all(isinstance(h, str) for h in hash_on):
        raise ValidationError("policy.hash_on", "must be a list of strings like header:x-user")
    try:
        return BalancingPolicy(**data, hash_on=tuple(HashOn.parse(h) for h in hash_on))
    except ValidationError as exc:
        raise ValidationError(f"policy.{exc.field}", exc.message) from None
    except (TypeError, ValueError) as exc:
        raise ValidationError("policy.value", str(exc)) from None


def policy_value(policy: BalancingPolicy) -> bytes:
    """The JSON value stored for a policy (every field, so `policy show` is explicit)."""
    return json.dumps(policy.to_mapping(), separators=(",", ":"), sort_keys=True).encode()


def parse_routes(raw: bytes, *, max_bytes: int = MAX_VALUE_BYTES) -> RouteTable:
    """Parse a routes value (`{"routes": [...]}`), validated by the model's rules; every
    error's field starts with `routes`."""
    data = load_object(raw, max_bytes)
    unknown = data.keys() - {"routes"}
    if unknown:
        raise ValidationError("routes", f"unknown fields {sorted(unknown)}; allowed: routes")
    if "routes" not in data:
        raise ValidationError("routes", "the object needs a `routes` list")
    return RouteTable.from_list(data["routes"])


def routes_value(routes: RouteTable) -> bytes:
    """The JSON value stored for a route table (`parse_routes` reads it back the same)."""
    return json.dumps({"routes": routes.to_list()}, separators=(",", ":"), sort_keys=True).encode()
