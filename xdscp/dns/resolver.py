"""The async resolver: dnspython queries, errors mapped to `DnsLookupError` at this boundary.

One `DnsResolver` serves the DNS source (`lookup`, a declared service to endpoints and a TTL)
and hostnames found in etcd registrations (`resolve_host` / `resolve`, a name to IPs). Names
are always absolute: no search list is applied. No answer cache: the refresh state machine
decides when to ask again.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from dns.rdtypes.IN.SRV import SRV

from xdscp.dns.config import DnsService, RecordType, ResolverConfig, check_dns_name
from xdscp.dns.errors import (
    DnsLookupError,
    DnsNoDataError,
    DnsNxdomainError,
    DnsRefusedError,
    DnsServfailError,
    DnsTimeoutError,
)
from xdscp.dns.records import SrvRecord, address_endpoints, order_addresses, srv_endpoints
from xdscp.errors import ValidationError
from xdscp.model import Endpoint

_FAMILIES = {RecordType.A: ("A",), RecordType.AAAA: ("AAAA",), RecordType.BOTH: ("A", "AAAA")}


@dataclass(frozen=True, slots=True)
class Lookup:
    """A successful lookup: the endpoints (never empty) and the smallest TTL of the answers."""

    endpoints: tuple[Endpoint, ...]
    ttl: float


@dataclass(frozen=True, slots=True)
class _Addresses:
    ips: tuple[str, ...]
    ttl: float


def map_error(name: str, exc: dns.exception.DNSException) -> DnsLookupError:
    """The `DnsLookupError` subclass for a dnspython exception."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return DnsNxdomainError(name)
    if isinstance(exc, dns.resolver.NoAnswer):
        return DnsNoDataError(name)
    if isinstance(exc, dns.exception.Timeout):
        return DnsTimeoutError(name, str(exc))
    if isinstance(exc, dns.resolver.NoNameservers):
        answers = [str(err[3]) for err in exc.kwargs.get("errors", ())]
        if "SERVFAIL" in answers:
            return DnsServfailError(name, str(exc))
        if "REFUSED" in answers:
            return DnsRefusedError(name, str(exc))
    return DnsLookupError(name, str(exc))


class DnsResolver:
    """Asynchronous A/AAAA/SRV resolution with the configured nameservers."""

    def __init__(self, config: ResolverConfig | None = None) -> None:
        self.config = config or ResolverConfig()
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _backend(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            config = self.config
            resolver = dns.asyncresolver.Resolver(configure=not config.nameservers)
            if config.nameservers:
                resolver.nameservers = list(config.nameservers)
            resolver.port = config.port
            resolver.lifetime = config.timeout
            resolver.timeout = config.timeout / 2
            resolver.cache = None
            self._resolver = resolver
        return self._resolver

    async def query(self, name: str, rdtype: str) -> dns.resolver.Answer:
        """One query; raises a `DnsLookupError` subclass, never a dnspython error."""
        try:
            return await self._backend().resolve(
                dns.name.from_text(name), rdtype, tcp=self.config.tcp, search=False
            )
        except dns.exception.DNSException as exc:
            raise map_error(name, exc) from None
        except OSError as exc:
            raise DnsLookupError(name, str(exc)) from None

    async def addresses(self, name: str, kind: RecordType = RecordType.BOTH) -> _Addresses:
        """The name's addresses of the given family (A, AAAA or BOTH), ordered, deduplicated."""
        results = await asyncio.gather(*(_attempt(self._family(name, t)) for t in _FAMILIES[kind]))
        found = [r for r in results if isinstance(r, _Addresses)]
        errors = [r for r in results if isinstance(r, DnsLookupError)]
        transient = [e for e in errors if e.transient]
        if transient:
            raise transient[0]
        if not found:
            missing = [e for e in errors if isinstance(e, DnsNxdomainError)]
            raise (missing or errors)[0]
        ips = order_addresses(ip for r in found for ip in r.ips)
        return _Addresses(tuple(ips), min(r.ttl for r in found))

    async def _family(self, name: str, rdtype: str) -> _Addresses:
        answer = await self.query(name, rdtype)
        ips = tuple(str(rdata.address) for rdata in answer)
        if not ips:
            raise DnsNoDataError(name)
        return _Addresses(ips, float(answer.chaining_result.minimum_ttl))

    async def lookup(self, declaration: DnsService) -> Lookup:
        """Endpoints for a declared service (see `DnsService`); raises `DnsLookupError`."""
        if declaration.record_type is RecordType.SRV:
            return await self._lookup_srv(declaration)
        port = declaration.port
        if port is None:
            raise ValidationError("port", f"is required for {declaration.record_type} records")
        found = await self.addresses(declaration.dns_name, declaration.record_type)
        endpoints = address_endpoints(found.ips, port, declaration.weight, declaration.locality)
        return Lookup(endpoints, found.ttl)

    async def _lookup_srv(self, declaration: DnsService) -> Lookup:
        answer = await self.query(declaration.dns_name, "SRV")
        records = [_srv_record(rdata) for rdata in answer if isinstance(rdata, SRV)]
        ttl = float(answer.chaining_result.minimum_ttl)
        targets = sorted({r.target for r in records} - {"."})
        kind = declaration.srv_target_type
        results = await asyncio.gather(*(_attempt(self.addresses(t, kind)) for t in targets))
        resolved: dict[str, tuple[str, ...]] = {}
        for target, result in zip(targets, results, strict=True):
            if isinstance(result, DnsLookupError):
                if result.transient:
                    raise result
                continue
            resolved[target] = result.ips
            ttl = min(ttl, result.ttl)
        endpoints = srv_endpoints(records, resolved, declaration.locality)
        if not endpoints:
            raise DnsNoDataError(declaration.dns_name, "no SRV target has an address")
        return Lookup(endpoints, ttl)

    async def resolve_host(self, host: str) -> list[str]:
        """IPs of `host` (A and AAAA), IPv4 first, each family in numeric order.

        An IP literal is returned as is (normalised). Raises a `DnsError` subclass
        (`DnsLookupError`) when the host does not resolve.
        """
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            pass
        try:
            name = check_dns_name("host", host)
        except ValueError as exc:
            raise DnsLookupError(host, str(exc)) from None
        return list((await self.addresses(name, RecordType.BOTH)).ips)

    async def resolve(self, host: str) -> list[str]:
        """Alias of `resolve_host`, matching `xdscp.sources.etcd.Resolver`."""
        return await self.resolve_host(host)


def _srv_record(rdata: SRV) -> SrvRecord:
    return SrvRecord(
        int(rdata.priority), int(rdata.weight), int(rdata.port), rdata.target.to_text().lower()
    )


_T = TypeVar("_T")


async def _attempt(job: Awaitable[_T]) -> _T | DnsLookupError:
    try:
        return await job
    except DnsLookupError as exc:
        return exc
