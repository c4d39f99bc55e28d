"""DnsSource against a real DNS server process: records, TTLs, SRV, failures, NXDOMAIN."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from tests.fixtures.dns import DnsTestServer
from tests.harness.dns import FAST, SRV_NAME, add_srv_targets, make_source
from xdscp.dns import (
    DnsResolver,
    DnsService,
    MissingPolicy,
    RecordType,
    RefreshPolicy,
    ResolverConfig,
    Status,
)
from xdscp.dns.errors import DnsNxdomainError
from xdscp.model import Locality
from xdscp.testing import Recorder, running, wait_for

API = DnsService("api", "api.test", RecordType.BOTH, port=8080, locality=Locality("eu", "a"))


async def test_records_added_and_removed_are_published(dns_server: DnsTestServer) -> None:
    """A/AAAA changes reach the published set; unchanged answers publish nothing."""
    dns_server.add("api.test.", "A", "10.0.0.2")
    dns_server.add("api.test.", "A", "10.0.0.1")
    source, recorder = make_source(dns_server, API), Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready)
        assert recorder.last == {"api": ["10.0.0.1:8080", "10.0.0.2:8080"]}
        assert recorder.sets[-1]["api"].endpoints[0].locality == Locality("eu", "a")
        await wait_for(lambda: len(dns_server.queries("api.test.", "A")) >= 4)
        assert len(recorder.sets) == 1
        dns_server.add("api.test.", "AAAA", "2001:db8::1")
        dns_server.add("api.test.", "A", "10.0.0.1")
        await wait_for(lambda: len(recorder.sets) == 2)
        assert recorder.last == {"api": ["10.0.0.1:8080", "10.0.0.2:8080", "[2001:db8::1]:8080"]}
        dns_server.remove("api.test.", "A", "10.0.0.2")
        await wait_for(lambda: len(recorder.sets) == 3)
        assert recorder.last == {"api": ["10.0.0.1:8080", "[2001:db8::1]:8080"]}


async def test_ttl_sets_the_next_query_within_bounds(dns_server: DnsTestServer) -> None:
    """The next query waits the smallest TTL, clamped to [min_interval, max_interval]."""
    dns_server.add("api.test.", "A", "10.0.0.1", ttl=1)
    refresh = RefreshPolicy(min_interval=0.2, max_interval=2.0)
    source, recorder = make_source(dns_server, API, refresh=refresh), Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.next_refresh("api") == 1.0)
        dns_server.set_ttl("api.test.", 0)
        await wait_for(lambda: source.next_refresh("api") == 0.2)
        dns_server.set_ttl("api.test.", 3600)
        await wait_for(lambda: source.next_refresh("api") == 2.0)
        dns_server.add("api.test.", "A", "10.0.0.2", ttl=3600)
        await wait_for(lambda: len(recorder.last.get("api", [])) == 2, limit=5)


async def test_a_long_ttl_is_not_queried_early(dns_server: DnsTestServer) -> None:
    """With TTL 3600 and max_interval 60, no second query is made (and no change seen)."""
    dns_server.add("api.test.", "A", "10.0.0.1", ttl=3600)
    refresh = RefreshPolicy(min_interval=0.05, max_interval=60)
    source, recorder = make_source(dns_server, API, refresh=refresh), Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready)
        dns_server.add("api.test.", "A", "10.0.0.2", ttl=3600)
        await asyncio.sleep(1.0)
        assert dns_server.queries("api.test.", "A") == ["udp"]
        assert recorder.last == {"api": ["10.0.0.1:8080"]}
        assert source.next_refresh("api") == 60


async def test_cname_chains_take_the_smallest_ttl(dns_server: DnsTestServer) -> None:
    """A name behind a CNAME resolves to the target's addresses; the chain's min TTL counts."""
    dns_server.add("api.test.", "CNAME", "real.test.", ttl=1)
    dns_server.add("real.test.", "A", "10.0.0.7", ttl=100)
    refresh = RefreshPolicy(min_interval=0.1, max_interval=10)
    source, recorder = make_source(dns_server, API, refresh=refresh), Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready)
        await wait_for(lambda: source.next_refresh("api") == 1.0)
    assert recorder.last == {"api": ["10.0.0.7:8080"]}


async def test_srv_weights_priorities_and_changes(dns_server: DnsTestServer) -> None:
    """SRV ports, weights (0 mapped) and priorities (ranked) are published and followed."""
    name = SRV_NAME
    add_srv_targets(dns_server, (60, 0, 1))
    decl = DnsService("grpc", name, RecordType.SRV)
    source, recorder = make_source(dns_server, decl), Recorder()

    def published() -> list[tuple[str, int, int]]:
        return [(e.key, e.weight, e.priority) for e in recorder.sets[-1]["grpc"].endpoints]

    async with running(source, recorder):
        await wait_for(lambda: source.ready)
        assert published() == [
            ("10.0.0.1:9001", 6000, 0),
            ("10.0.0.2:9002", 1, 0),
            ("[2001:db8::3]:9003", 1, 1),
        ]
        dns_server.remove(name, "SRV", "10 0 9002 b.test.")
        dns_server.add(name, "SRV", "10 20 9002 b.test.")
        await wait_for(lambda: len(recorder.sets) == 2)
        assert published()[:2] == [("10.0.0.1:9001", 60, 0), ("10.0.0.2:9002", 20, 0)]
        dns_server.remove(name, "SRV", "50 1 9003 c.test.")
        dns_server.add(name, "SRV", "5 1 9003 c.test.")
        await wait_for(lambda: len(recorder.sets) == 3)
        assert published()[0] == ("[2001:db8::3]:9003", 1, 0)
        assert {p for _, _, p in published()[1:]} == {1}


@pytest.mark.parametrize(
    ("mode", "reason"), [("servfail", "servfail"), ("refused", "refused"), ("drop", "timeout")]
)
async def test_failures_keep_the_last_good(
    dns_server: DnsTestServer, mode: str, reason: str
) -> None:
    """SERVFAIL / REFUSED / timeout: last good kept, counted, logged once, then recovered."""
    dns_server.add("api.test.", "A", "10.0.0.1")
    source, recorder = make_source(dns_server, API, timeout=0.3), Recorder()
    with capture_logs() as logs:
        async with running(source, recorder):
            await wait_for(lambda: source.ready)
            dns_server.set_mode(mode)
            failures = source.metrics.failures.labels("api", reason)
            await wait_for(lambda: failures._value.get() >= 4)
            assert source.status("api") is Status.FAILING
            assert len(recorder.sets) == 1
            assert source.metrics.up.labels("api")._value.get() == 0
            dns_server.add("api.test.", "A", "10.0.0.3")
            dns_server.set_mode("normal")
            await wait_for(lambda: len(recorder.sets) == 2)
    assert recorder.last == {"api": ["10.0.0.1:8080", "10.0.0.3:8080"]}
    events = [e["event"] for e in logs if e["event"].startswith("dns_service_")]
    assert events == ["dns_service_resolved", "dns_service_failing", "dns_service_recovered"]
    failing = next(e for e in logs if e["event"] == "dns_service_failing")
    assert (failing["reason"], failing["endpoints"], failing["log_level"]) == (reason, 1, "warning")


async def test_a_failing_srv_target_keeps_the_whole_service(dns_server: DnsTestServer) -> None:
    """A SERVFAIL on one SRV target keeps the last good set instead of dropping that target."""
    name = "_http._tcp.svc.test."
    dns_server.add(name, "SRV", "0 1 80 a.test.")
    dns_server.add(name, "SRV", "0 1 80 b.test.")
    dns_server.add("a.test.", "A", "10.0.0.1")
    dns_server.add("b.test.", "A", "10.0.0.2")
    source = make_source(dns_server, DnsService("web", name, "SRV", srv_target_type="A"))  # type: ignore[arg-type]
    recorder = Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready)
        dns_server.set_mode("servfail", "b.test.")
        failures = source.metrics.failures.labels("web", "servfail")
        await wait_for(lambda: failures._value.get() >= 3)
        assert len(recorder.sets) == 1
        dns_server.remove("b.test.")
        dns_server.set_mode("normal", "b.test.")
        await wait_for(lambda: len(recorder.sets) == 2)
    assert recorder.last == {"web": ["10.0.0.1:80"]}


async def test_nxdomain_keeps_by_default(dns_server: DnsTestServer) -> None:
    """Default policy: a vanished name keeps its endpoints, past the grace too, logged."""
    dns_server.add("api.test.", "A", "10.0.0.1")
    refresh = RefreshPolicy(
        min_interval=0.1, max_interval=0.1, backoff_initial=0.05, backoff_max=0.1, missing_grace=0.3
    )
    source, recorder = make_source(dns_server, API, refresh=refresh), Recorder()
    with capture_logs() as logs:
        async with running(source, recorder):
            await wait_for(lambda: source.ready)
            dns_server.remove("api.test.")
            await wait_for(lambda: source.status("api") is Status.GONE)
            nxdomain = source.metrics.failures.labels("api", "nxdomain")
            await wait_for(lambda: nxdomain._value.get() >= 8)
    assert len(recorder.sets) == 1
    assert recorder.last == {"api": ["10.0.0.1:8080"]}
    events = [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("dns_service_")]
    assert events[1:] == [("dns_service_missing", "warning"), ("dns_service_missing_kept", "error")]


async def test_nxdomain_empties_after_grace_when_configured(dns_server: DnsTestServer) -> None:
    """on_missing=empty: the service stays for the grace, then is published without endpoints."""
    dns_server.add("api.test.", "A", "10.0.0.1")
    dns_server.add("other.test.", "A", "10.0.0.9")
    refresh = RefreshPolicy(
        min_interval=0.1,
        max_interval=0.1,
        backoff_initial=0.05,
        missing_grace=1.0,
        on_missing=MissingPolicy.EMPTY,
    )
    other = DnsService("other", "other.test", port=80)
    source, recorder = make_source(dns_server, API, other, refresh=refresh), Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready)
        dns_server.remove("api.test.")
        await wait_for(lambda: source.status("api") is Status.MISSING)
        assert recorder.last["api"] == ["10.0.0.1:8080"]
        await wait_for(lambda: len(recorder.sets) == 2)
        assert source.status("api") is Status.GONE
        dns_server.add("api.test.", "A", "10.0.0.5")
        await wait_for(lambda: len(recorder.sets) == 3)
    assert [s["api"].endpoints for s in recorder.sets][1] == ()
    assert recorder.last == {"api": ["10.0.0.5:8080"], "other": ["10.0.0.9:80"]}


async def test_a_name_that_never_existed_is_left_out(dns_server: DnsTestServer) -> None:
    """NXDOMAIN from the start: settled at once (ready), the service is not published."""
    dns_server.add("other.test.", "A", "10.0.0.9")
    other = DnsService("other", "other.test", port=80)
    source, recorder = make_source(dns_server, API, other), Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready, limit=3)
    assert recorder.last == {"other": ["10.0.0.9:80"]}


async def test_large_answers_fall_back_to_tcp(dns_server: DnsTestServer) -> None:
    """An answer too large for UDP is truncated, retried over TCP and published whole."""
    for i in range(1, 151):
        dns_server.add("big.test.", "A", f"10.1.{i // 100}.{i % 100}")
    source = make_source(dns_server, DnsService("big", "big.test", port=80))
    recorder = Recorder()
    async with running(source, recorder):
        await wait_for(lambda: source.ready)
    assert len(recorder.last["big"]) == 150
    assert dns_server.queries("big.test.", "A")[:2] == ["udp", "tcp"]


async def test_tcp_can_be_forced(dns_server: DnsTestServer) -> None:
    """tcp=True sends every query over TCP."""
    dns_server.add("api.test.", "A", "10.0.0.1")
    source, recorder = make_source(dns_server, API, tcp=True), Recorder()
    async with running(source, recorder):
        await wait_for(lambda: len(dns_server.queries("api.test.")) >= 4)
    assert set(dns_server.queries()) == {"tcp"}
    assert recorder.last == {"api": ["10.0.0.1:8080"]}


async def test_resolve_host_for_registrations(dns_server: DnsTestServer) -> None:
    """resolve_host: A and AAAA, deduplicated, IPv4 first; NXDOMAIN raises a DnsError."""
    dns_server.add("web.test.", "AAAA", "2001:db8::1")
    dns_server.add("web.test.", "A", "10.0.0.2")
    dns_server.add("web.test.", "A", "10.0.0.1")
    config = ResolverConfig(nameservers=("127.0.0.1",), port=dns_server.port, timeout=0.5)
    resolver = DnsResolver(config)
    assert await resolver.resolve_host("web.test") == ["10.0.0.1", "10.0.0.2", "2001:db8::1"]
    with pytest.raises(DnsNxdomainError):
        await resolver.resolve("missing.test")
    assert FAST.min_interval < 1
