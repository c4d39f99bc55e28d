"""DNS service declarations and resolver settings: frozen, validated, errors naming the field.

`load_dns_config` reads the `dns:` section of a configuration mapping (parsed YAML or JSON);
the format is in `xdscp/dns/README.md`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import dns.exception
import dns.name

from xdscp.errors import ValidationError
from xdscp.model import (
    UINT32_MAX,
    BalancingPolicy,
    HashOn,
    LbPolicy,
    Locality,
    check_float,
    check_int,
    check_ip,
    check_service_name,
)


class RecordType(StrEnum):
    """What a DNS service is resolved from."""

    A = "A"
    AAAA = "AAAA"
    BOTH = "BOTH"
    SRV = "SRV"


class MissingPolicy(StrEnum):
    """What to do once a name has been NXDOMAIN / without records for `missing_grace`."""

    KEEP = "keep"
    """Keep the last good endpoints indefinitely (logged as an error once). The default."""
    EMPTY = "empty"
    """Publish the service with no endpoints (clients fail fast instead of using stale IPs)."""


_E = TypeVar("_E", bound=StrEnum)
_WEIGHTED = BalancingPolicy(LbPolicy.WEIGHTED_ROUND_ROBIN)
_PLAIN = BalancingPolicy()
_NO_LOCALITY = Locality()
_T = TypeVar("_T")


def _parse_enum(kind: type[_E], field_name: str, value: object) -> _E:
    if isinstance(value, kind):
        return value
    for member in kind:
        if str(value).lower() == member.value.lower():
            return member
    allowed = ", ".join(m.value for m in kind)
    raise ValidationError(field_name, f"must be one of {allowed}, got {value!r}")


def check_dns_name(field_name: str, value: object) -> str:
    """A DNS name as absolute lower-case text (`api.example.`); search lists are never used."""
    if not isinstance(value, str) or not value.strip("."):
        raise ValidationError(field_name, f"must be a non-empty DNS name, got {value!r}")
    try:
        name = dns.name.from_text(value.lower())
    except dns.exception.DNSException as exc:
        raise ValidationError(field_name, f"is not a valid DNS name ({exc}): {value!r}") from None
    return name.to_text()


@dataclass(frozen=True, slots=True)
class DnsService:
    """One service found by DNS.

    A/AAAA/BOTH: every address is an endpoint on `port`, with `weight` and `locality`.
    SRV: every target is resolved (`srv_target_type` records) and its addresses get the SRV
    port, weight and priority; `port` and `weight` must be left unset. `policy` unset: see
    `effective_policy`.
    """

    service: str
    dns_name: str
    record_type: RecordType = RecordType.A
    port: int | None = None
    policy: BalancingPolicy | None = None
    locality: Locality = _NO_LOCALITY
    weight: int = 1
    srv_target_type: RecordType = RecordType.BOTH

    def __post_init__(self) -> None:
        check_service_name(self.service)
        object.__setattr__(self, "dns_name", check_dns_name("dns_name", self.dns_name))
        kind = _parse_enum(RecordType, "record_type", self.record_type)
        object.__setattr__(self, "record_type", kind)
        targets = _parse_enum(RecordType, "srv_target_type", self.srv_target_type)
        if targets is RecordType.SRV:
            raise ValidationError("srv_target_type", "must be one of A, AAAA, BOTH, got SRV")
        object.__setattr__(self, "srv_target_type", targets)
        if self.policy is not None and not isinstance(self.policy, BalancingPolicy):
            raise ValidationError("policy", f"must be a BalancingPolicy, got {self.policy!r}")
        if not isinstance(self.locality, Locality):
            raise ValidationError("locality", f"must be a Locality, got {self.locality!r}")
        check_int("weight", self.weight, 1, UINT32_MAX)
        if kind is RecordType.SRV:
            if self.port is not None:
                raise ValidationError("port", "must be unset for SRV (records carry the port)")
            if self.weight != 1:
                raise ValidationError("weight", "must be unset for SRV (records carry weights)")
        elif self.port is None:
            raise ValidationError("port", f"is required for {kind} records")
        else:
            check_int("port", self.port, 1, 65535)

    @property
    def effective_policy(self) -> BalancingPolicy:
        """`policy`, or when unset: weighted_round_robin for SRV (so SRV weights count; plain
        round_robin sends no weights), round_robin otherwise."""
        if self.policy is not None:
            return self.policy
        return _WEIGHTED if self.record_type is RecordType.SRV else _PLAIN


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    """Where and how queries are sent.

    `nameservers` are IP literals, all on `port`; empty means the system's `/etc/resolv.conf`.
    `timeout` bounds one lookup (all servers and retries). Queries go over UDP and are retried
    over TCP when an answer is truncated; `tcp=True` always uses TCP.
    """

    nameservers: tuple[str, ...] = ()
    port: int = 53
    timeout: float = 3.0
    tcp: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.nameservers, str):
            raise ValidationError("nameservers", "must be a list of IP literals, not a string")
        servers = tuple(check_ip("nameservers", s) for s in self.nameservers)
        object.__setattr__(self, "nameservers", servers)
        check_int("port", self.port, 1, 65535)
        check_float("timeout", self.timeout, 0.01, 300.0)
        if not isinstance(self.tcp, bool):
            raise ValidationError("tcp", f"must be true or false, got {self.tcp!r}")


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """When names are queried again, and what failures do to the published endpoints.

    After an answer, the next query is due after the answer's smallest TTL clamped to
    [`min_interval`, `max_interval`] seconds (defaults 30 s, as grpc-go's resolver, and 300 s).
    After a failure, retries back off exponentially from `backoff_initial` to `backoff_max`
    seconds with +-`backoff_jitter` relative jitter; the last good endpoints stay published.
    NXDOMAIN / no records: the last good endpoints are kept for `missing_grace` seconds, then
    `on_missing` decides (keep, the default, or publish the service with no endpoints).
    """

    min_interval: float = 30.0
    max_interval: float = 300.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    backoff_jitter: float = 0.2
    on_missing: MissingPolicy = MissingPolicy.KEEP
    missing_grace: float = 300.0

    def __post_init__(self) -> None:
        check_float("min_interval", self.min_interval, 0.001, 86_400.0)
        check_float("max_interval", self.max_interval, self.min_interval, 86_400.0)
        check_float("backoff_initial", self.backoff_initial, 0.001, 86_400.0)
        check_float("backoff_max", self.backoff_max, self.backoff_initial, 86_400.0)
        check_float("backoff_jitter", self.backoff_jitter, 0.0, 0.5)
        policy = _parse_enum(MissingPolicy, "on_missing", self.on_missing)
        object.__setattr__(self, "on_missing", policy)
        check_float("missing_grace", self.missing_grace, 0.0, 30 * 86_400.0)


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """The whole `dns:` configuration section."""

    services: tuple[DnsService, ...] = ()
    resolver: ResolverConfig = ResolverConfig()
    refresh: RefreshPolicy = RefreshPolicy()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for declaration in self.services:
            if declaration.service in seen:
                raise ValidationError("services", f"{declaration.service} is declared twice")
            seen.add(declaration.service)


def _build(kind: type[_T], prefix: str, data: object, **parsed: Any) -> _T:
    if not isinstance(data, Mapping):
        raise ValidationError(prefix, f"must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            raise ValidationError(f"{prefix}.{key}", f"unknown key; allowed: {sorted(known)}")
    values = {str(k): v for k, v in data.items()} | parsed
    try:
        return kind(**values)
    except ValidationError as exc:
        raise ValidationError(f"{prefix}.{exc.field}", exc.message) from None
    except TypeError as exc:
        raise ValidationError(prefix, str(exc)) from None


def _hash_on(prefix: str, raw: object) -> tuple[HashOn, ...]:
    if isinstance(raw, str) or not isinstance(raw, Iterable):
        raise ValidationError(f"{prefix}.hash_on", "must be a list like ['header:x-user']")
    try:
        return tuple(h if isinstance(h, HashOn) else HashOn.parse(str(h)) for h in raw)
    except ValidationError as exc:
        raise ValidationError(f"{prefix}.{exc.field}", exc.message) from None


def _service(index: int, data: object) -> DnsService:
    prefix = f"dns.services[{index}]"
    if not isinstance(data, Mapping):
        raise ValidationError(prefix, f"must be a mapping, got {type(data).__name__}")
    parsed: dict[str, Any] = {}
    if "policy" in data:
        policy = data["policy"]
        raw = policy.get("hash_on", ()) if isinstance(policy, Mapping) else ()
        parsed["policy"] = _build(
            BalancingPolicy, f"{prefix}.policy", policy, hash_on=_hash_on(f"{prefix}.policy", raw)
        )
    if "locality" in data:
        parsed["locality"] = _build(Locality, f"{prefix}.locality", data["locality"])
    if "nameservers" in data:
        raise ValidationError(f"{prefix}.nameservers", "belongs in dns.resolver")
    return _build(DnsService, prefix, data, **parsed)


def load_dns_config(section: Mapping[str, object]) -> DnsConfig:
    """Build a `DnsConfig` from the `dns:` section (keys `services`, `resolver`, `refresh`)."""
    unknown = set(section) - {"services", "resolver", "refresh"}
    if unknown:
        raise ValidationError(f"dns.{sorted(unknown)[0]}", "unknown key")
    raw_services = section.get("services", ())
    if not isinstance(raw_services, Iterable) or isinstance(raw_services, str | Mapping):
        raise ValidationError("dns.services", "must be a list of service declarations")
    resolver = section.get("resolver", {})
    nameservers = resolver.get("nameservers", ()) if isinstance(resolver, Mapping) else ()
    servers = (nameservers,) if isinstance(nameservers, str) else tuple(nameservers)
    return DnsConfig(
        services=tuple(_service(i, item) for i, item in enumerate(raw_services)),
        resolver=_build(ResolverConfig, "dns.resolver", resolver, nameservers=servers),
        refresh=_build(RefreshPolicy, "dns.refresh", section.get("refresh", {})),
    )
