"""dnspython exceptions are mapped to DnsLookupError subclasses with a constant reason."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import dns.exception
import dns.message
import dns.name
import dns.resolver
import pytest

from xdscp.dns import DnsResolver, ResolverConfig
from xdscp.dns.errors import (
    DnsLookupError,
    DnsNoDataError,
    DnsNxdomainError,
    DnsRefusedError,
    DnsServfailError,
    DnsTimeoutError,
)
from xdscp.dns.resolver import map_error
from xdscp.errors import DnsError

QUERY = dns.message.make_query("a.test.", "A")


def _no_nameservers(*answers: object) -> dns.resolver.NoNameservers:
    errors = [("127.0.0.1", False, 53, answer, None) for answer in answers]
    return dns.resolver.NoNameservers(request=QUERY, errors=errors)


@pytest.mark.parametrize(
    ("exc", "kind", "reason", "transient"),
    [
        (
            dns.resolver.NXDOMAIN(qnames=[dns.name.from_text("a.test.")], responses={}),
            DnsNxdomainError,
            "nxdomain",
            False,
        ),
        (dns.resolver.NoAnswer(), DnsNoDataError, "nodata", False),
        (dns.resolver.LifetimeTimeout(timeout=1.0, errors=[]), DnsTimeoutError, "timeout", True),
        (dns.exception.Timeout(), DnsTimeoutError, "timeout", True),
        (_no_nameservers("SERVFAIL"), DnsServfailError, "servfail", True),
        (_no_nameservers("REFUSED"), DnsRefusedError, "refused", True),
        (_no_nameservers(OSError("unreachable"), "SERVFAIL"), DnsServfailError, "servfail", True),
        (_no_nameservers(OSError("unreachable")), DnsLookupError, "error", True),
        (dns.resolver.YXDOMAIN(), DnsLookupError, "error", True),
    ],
)
def test_mapping(
    exc: dns.exception.DNSException, kind: type[DnsLookupError], reason: str, transient: bool
) -> None:
    """Each dnspython error becomes the matching DnsError subclass, reason and transience."""
    mapped = map_error("a.test.", exc)
    assert type(mapped) is kind
    assert isinstance(mapped, DnsError)
    assert (mapped.reason, mapped.transient, mapped.name) == (reason, transient, "a.test.")


async def test_ip_literals_resolve_without_a_query() -> None:
    """resolve_host returns a normalised IP literal as is (no nameserver is contacted)."""
    resolver = DnsResolver(ResolverConfig(nameservers=("192.0.2.1",), timeout=0.01))
    assert await resolver.resolve_host("[::0001]") == ["::1"]
    assert await resolver.resolve("10.0.0.1") == ["10.0.0.1"]


async def test_invalid_host_names_raise_dns_errors() -> None:
    """A host that is not a valid DNS name raises DnsLookupError (a DnsError), not ValueError."""
    resolver = DnsResolver(ResolverConfig(nameservers=("192.0.2.1",), timeout=0.01))
    with pytest.raises(DnsLookupError):
        await resolver.resolve_host("a..b")
