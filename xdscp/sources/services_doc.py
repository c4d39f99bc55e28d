"""The `services:` document: one strict parser, with line numbers, for every place it is read.

`xdscp serve --static FILE`, `sources.static.services` of `serve --config FILE` and
`xdscp simulate --file` all read services through `services_section` (one endpoint:
`endpoint_section`, one policy: `policy_section`)::

    services:
      web:
        policy: {lb: weighted_round_robin}        # any policy field; optional
        routes:                                   # optional (`xdscp.model.routes`)
          - {match: {headers: [{name: x-canary, present: true}]}, cluster: web-v2}
          - {split: {web: 90, web-v2: 10}}
        endpoints:
          - {address: 10.0.0.1, port: 8080, weight: 3, locality: {zone: a}}
          - {address: 10.0.0.2, port: 8080, priority: 1, health: degraded}

Values are checked by the model's own rules (`Endpoint`, `BalancingPolicy`, `RouteTable`,
`Service`);
unknown keys are errors naming the closest known one. Every error is a `ConfigFieldError`:
`services.yaml:7: services.web.endpoints[1]: unknown field 'wieght', did you mean 'weight'?`.
`services_document` is the inverse: the mapping that parses back to the same services.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from xdscp.errors import ConfigFieldError, ValidationError
from xdscp.model import (
    POLICY_PARTS,
    BalancingPolicy,
    Endpoint,
    HashFunction,
    HashOn,
    Health,
    Locality,
    RouteTable,
    Service,
)
from xdscp.sources.located import FieldPath, Located, field_name, parse_yaml

SERVICE_KEYS = ("endpoints", "policy", "routes")
# `load` is what a registrant reports of itself, refreshed (xdscp register --utilization): a
# file's endpoint has none, so the key is unknown here
ENDPOINT_KEYS = tuple(f.name for f in dataclasses.fields(Endpoint) if f.name != "load")
_LOCALITY_KEYS = tuple(f.name for f in dataclasses.fields(Locality))
_POLICY_FIELDS = {f.name: f for f in dataclasses.fields(BalancingPolicy)}


def load_services(text: str, name: str = "<services>") -> dict[str, Service]:
    """A services file's text (`name` is its path, for errors): its `services:` mapping,
    strictly; raises `ConfigFieldError` at the first bad line."""
    located = parse_yaml(text, name)
    located.mapping((), ("services",))
    if not located.has(("services",)):
        raise ConfigFieldError(f"{name}:1", "", "the file needs a `services:` mapping")
    return services_section(located, ("services",))


def services_section(located: Located, path: FieldPath) -> dict[str, Service]:
    """Every service of the mapping at `path` (service name -> endpoints and policy)."""
    services: dict[str, Service] = {}
    for name in located.mapping(path):
        spec_path = (*path, name)
        spec = located.mapping(spec_path, SERVICE_KEYS)
        ends = (*spec_path, "endpoints")
        count = len(located.sequence(ends))
        endpoints = tuple(endpoint_section(located, (*ends, i)) for i in range(count))
        policy = policy_section(located, (*spec_path, "policy")) if "policy" in spec else None
        routes = routes_section(located, spec_path) if spec.get("routes") is not None else None
        try:
            services[name] = Service(name, endpoints, policy or BalancingPolicy(), routes)
        except ValidationError as exc:
            raise located.wrap(spec_path, exc, {"service": ()}) from None
    return services


def endpoint_section(located: Located, path: FieldPath) -> Endpoint:
    """The endpoint mapping at `path` (`address` and `port` required)."""
    data = located.get(path)
    for key in _LOCALITY_KEYS:
        if isinstance(data, dict) and key in data:
            where = located.origin((*path, key))
            message = f"{key} goes in `locality: {{region, zone, sub_zone}}`"
            raise ConfigFieldError(where, field_name((*path, "locality")), message)
    data = located.mapping(path, ENDPOINT_KEYS)
    for required in ("address", "port"):
        if data.get(required) is None:
            raise located.error((*path, required), "is required")
    loc = (*path, "locality")
    parts = {k: located.string((*loc, k)) or "" for k in located.mapping(loc, _LOCALITY_KEYS)}
    meta = (*path, "metadata")
    metadata = {str(k): located.string((*meta, k)) or "" for k in located.mapping(meta)}
    values = {k: v for k, v in data.items() if v is not None and k not in {"locality", "metadata"}}
    for name in ("address", "health", "hash_key"):
        if name in values:
            located.string((*path, name))
    try:
        return Endpoint(**values, locality=Locality(**parts), metadata=metadata)
    except ValidationError as exc:
        raise located.wrap(path, exc) from None


def routes_section(located: Located, spec_path: FieldPath) -> RouteTable:
    """The `routes:` list of the service at `spec_path`, located at the bad field's line."""
    try:
        return RouteTable.from_list(located.get((*spec_path, "routes")))
    except ValidationError as exc:
        raise located.wrap(spec_path, exc) from None


def policy_section(located: Located, path: FieldPath) -> BalancingPolicy:
    """The policy mapping at `path`: `BalancingPolicy` fields, `hash_on` as strings."""
    given = located.mapping(path, tuple(_POLICY_FIELDS))
    values = {k: v for k, v in given.items() if v is not None}
    for name, kind in POLICY_PARTS.items():
        if name in values:
            _check_keys(located, (*path, name), kind)
    hash_on = []
    for index in range(len(located.sequence((*path, "hash_on")))):
        try:
            hash_on.append(HashOn.parse(located.string((*path, "hash_on", index)) or ""))
        except ValidationError as exc:
            raise located.error((*path, "hash_on", index), exc.message) from None
    values["hash_on"] = tuple(hash_on)
    for name, value in values.items():
        if isinstance(_POLICY_FIELDS[name].default, bool) and not isinstance(value, bool):
            raise located.error((*path, name), f"must be true or false, got {value!r}")
    if values.get("hash_function", HashFunction.XX_HASH) not in tuple(HashFunction):
        allowed = ", ".join(HashFunction)
        raise located.error((*path, "hash_function"), f"must be one of {allowed}")
    try:
        return BalancingPolicy(**values)
    except ValidationError as exc:
        raise located.wrap(path, exc) from None
    except (TypeError, ValueError) as exc:  # a value of a type the model does not take
        raise located.error(path, str(exc)) from None


def _check_keys(located: Located, path: FieldPath, kind: type) -> None:
    """Unknown keys of a nested policy (and of its own nested parts), at their line."""
    data = located.mapping(path, [f.name for f in dataclasses.fields(kind)])
    hints = typing.get_type_hints(kind)
    for name, value in data.items():
        parts = [
            a
            for a in typing.get_args(hints[name])
            if isinstance(a, type) and dataclasses.is_dataclass(a)
        ]
        if value is not None and parts:
            _check_keys(located, (*path, name), parts[0])


def endpoint_document(endpoint: Endpoint) -> dict[str, Any]:
    """The mapping `endpoint_section` reads back as `endpoint` (defaults left out)."""
    data: dict[str, Any] = {"address": endpoint.address, "port": endpoint.port}
    if endpoint.weight != 1:
        data["weight"] = endpoint.weight
    locality = {k: v for k, v in dataclasses.asdict(endpoint.locality).items() if v}
    if locality:
        data["locality"] = locality
    if endpoint.priority:
        data["priority"] = endpoint.priority
    if endpoint.health is not Health.HEALTHY:
        data["health"] = str(endpoint.health)
    if endpoint.metadata:
        data["metadata"] = dict(endpoint.metadata)
    if endpoint.hash_key is not None:
        data["hash_key"] = endpoint.hash_key
    return data


def service_document(service: Service) -> dict[str, Any]:
    """One service's mapping in the `services:` document (routes only when it has some)."""
    data: dict[str, Any] = {
        "policy": service.policy.to_mapping(),
        "endpoints": [endpoint_document(e) for e in service.endpoints],
    }
    if service.routes is not None:
        data["routes"] = service.routes.to_list()
    return data


def services_document(services: Mapping[str, Service]) -> dict[str, Any]:
    """The `services:` document `load_services` reads back as `services`."""
    return {"services": {name: service_document(service) for name, service in services.items()}}
