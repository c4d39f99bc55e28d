"""DNS declarations and settings: validation names the field, the config section parses."""

from __future__ import annotations

import pytest

from xdscp.dns import (
    DnsService,
    MissingPolicy,
    RecordType,
    RefreshPolicy,
    ResolverConfig,
    load_dns_config,
)
from xdscp.errors import ValidationError
from xdscp.model import BalancingPolicy, LbPolicy, Locality


def test_a_declaration_is_normalised() -> None:
    """Names become absolute lower-case; record types parse case-insensitively."""
    decl = DnsService("api", "API.Example.com", "both", port=8080)  # type: ignore[arg-type]
    assert decl.dns_name == "api.example.com."
    assert decl.record_type is RecordType.BOTH
    assert decl.srv_target_type is RecordType.BOTH


_DECL = {"service": "s", "dns_name": "a.test"}
INVALID: list[tuple[type, dict[str, object], str]] = [
    # declarations
    (DnsService, {"service": "bad name", "dns_name": "a.test", "port": 1}, "service"),
    (DnsService, {**_DECL, "dns_name": "", "port": 1}, "dns_name"),
    (DnsService, {**_DECL, "dns_name": "a..test", "port": 1}, "dns_name"),
    (DnsService, _DECL, "port"),
    (DnsService, {**_DECL, "port": 0}, "port"),
    (DnsService, {**_DECL, "port": 70000}, "port"),
    (DnsService, {**_DECL, "record_type": "MX", "port": 1}, "record_type"),
    (DnsService, {**_DECL, "record_type": "SRV", "port": 1}, "port"),
    (DnsService, {**_DECL, "record_type": "SRV", "weight": 5}, "weight"),
    (DnsService, {**_DECL, "port": 1, "weight": 0}, "weight"),
    (DnsService, {**_DECL, "port": 1, "srv_target_type": "SRV"}, "srv_target_type"),
    (DnsService, {**_DECL, "port": 1, "policy": "maglev"}, "policy"),
    # resolver settings: IP nameservers, port range, positive timeout, bool tcp
    (ResolverConfig, {"nameservers": ("dns.example",)}, "nameservers"),
    (ResolverConfig, {"nameservers": "127.0.0.1"}, "nameservers"),
    (ResolverConfig, {"port": 0}, "port"),
    (ResolverConfig, {"timeout": 0}, "timeout"),
    (ResolverConfig, {"tcp": "yes"}, "tcp"),
    # refresh settings, including min <= max for intervals and backoff
    (RefreshPolicy, {"min_interval": 0}, "min_interval"),
    (RefreshPolicy, {"min_interval": 10, "max_interval": 5}, "max_interval"),
    (RefreshPolicy, {"backoff_initial": 10, "backoff_max": 1}, "backoff_max"),
    (RefreshPolicy, {"backoff_jitter": 0.9}, "backoff_jitter"),
    (RefreshPolicy, {"on_missing": "drop"}, "on_missing"),
    (RefreshPolicy, {"missing_grace": -1}, "missing_grace"),
]


@pytest.mark.parametrize(("kind", "kwargs", "field"), INVALID)
def test_invalid_settings_name_the_field(kind: type, kwargs: dict[str, object], field: str) -> None:
    """Each invalid declaration, resolver or refresh setting raises ValidationError naming
    the offending field."""
    with pytest.raises(ValidationError) as caught:
        kind(**kwargs)
    assert caught.value.field == field


def test_documented_defaults() -> None:
    """The defaults the README documents: 30 s..300 s refresh, 1..60 s backoff, keep, 300 s."""
    policy, resolver = RefreshPolicy(), ResolverConfig()
    assert (policy.min_interval, policy.max_interval) == (30.0, 300.0)
    assert (policy.backoff_initial, policy.backoff_max, policy.backoff_jitter) == (1.0, 60.0, 0.2)
    assert (policy.on_missing, policy.missing_grace) == (MissingPolicy.KEEP, 300.0)
    assert (resolver.nameservers, resolver.port, resolver.timeout, resolver.tcp) == (
        (),
        53,
        3.0,
        False,
    )


def test_the_config_section_parses() -> None:
    """A full `dns:` section builds services with policy and locality, resolver and refresh."""
    config = load_dns_config(
        {
            "resolver": {"nameservers": ["127.0.0.1"], "port": 5353, "tcp": True},
            "refresh": {"min_interval": 5, "on_missing": "empty", "missing_grace": 60},
            "services": [
                {"service": "api", "dns_name": "api.test", "port": 80, "weight": 3,
                 "locality": {"region": "eu", "zone": "a"},
                 "policy": {"lb": "ring_hash", "hash_on": ["header:x-user"]}},
                {"service": "grpc", "dns_name": "_grpc._tcp.test", "record_type": "srv"},
            ],
        }
    )  # fmt: skip
    api, grpc = config.services
    assert api.locality == Locality("eu", "a")
    assert api.policy.lb is LbPolicy.RING_HASH
    assert str(api.policy.hash_on[0]) == "header:x-user"
    assert api.weight == 3
    assert grpc.record_type is RecordType.SRV
    assert grpc.policy is None
    assert grpc.effective_policy == BalancingPolicy(LbPolicy.WEIGHTED_ROUND_ROBIN)
    assert DnsService("a", "a.test", port=1).effective_policy == BalancingPolicy()
    assert config.resolver == ResolverConfig(("127.0.0.1",), 5353, 3.0, tcp=True)
    assert config.refresh.on_missing is MissingPolicy.EMPTY


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"services": [{"service": "a", "dns_name": "a.test", "port": 1, "prot": 2}]},
         "dns.services[0].prot"),
        ({"services": [{"service": "a", "dns_name": "a.test", "port": 1,
                        "policy": {"lb": "nope"}}]}, "dns.services[0].policy.lb"),
        ({"services": [{"service": "a", "dns_name": "a.test", "port": 1,
                        "locality": {"country": "x"}}]}, "dns.services[0].locality.country"),
        ({"services": [{"service": "a", "dns_name": "a.test", "port": 1},
                       {"service": "a", "dns_name": "b.test", "port": 1}]}, "services"),
        ({"services": [{"service": "a", "dns_name": "a.test", "port": 1,
                        "policy": {"lb": "ring_hash", "hash_on": ["body:x"]}}]},
         "dns.services[0].policy.hash_on.source"),
        ({"services": [{"service": "a", "dns_name": "a.test", "port": 1,
                        "policy": {"lb": "ring_hash", "hash_on": "header:x"}}]},
         "dns.services[0].policy.hash_on"),
        ({"resolver": {"port": "x"}}, "dns.resolver.port"),
        ({"refresh": {"max_interval": 0.0001}}, "dns.refresh.max_interval"),
        ({"servers": []}, "dns.servers"),
        ({"services": "api"}, "dns.services"),
    ],
)  # fmt: skip
def test_bad_config_names_the_path(section: dict[str, object], field: str) -> None:
    """Errors in the config section name the dotted path of the bad key."""
    with pytest.raises(ValidationError) as caught:
        load_dns_config(section)
    assert caught.value.field == field
