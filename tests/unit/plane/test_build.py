"""`build_plane`: the one composition root. The plane a test or a benchmark builds from a
configuration is the plane `xdscp serve` runs: configured sources in precedence order, the
caller's after them, the registry told the translator's domain suffixes, the replicas'
health checker shared through etcd."""

from __future__ import annotations

from xdscp.config import EtcdRegistryConfig
from xdscp.etcd import EtcdClient
from xdscp.model import Endpoint, Service
from xdscp.plane import ServeOptions, ServerConfig, build_plane
from xdscp.registry import Placement, RegistryLayout, build_registration
from xdscp.registry.registration import encode
from xdscp.sources import MemorySource
from xdscp.testing import FakeEtcd, wait_for
from xdscp.translate import TranslateOptions

PORTS = ServeOptions(xds_host="127.0.0.1", xds_port=0, admin_port=0)


async def test_configured_sources_come_first_and_the_callers_after() -> None:
    """`web` in the configuration's services and in a source the caller built: the
    configuration's is served, and the clash is the caller's source's."""
    mine = {"web": Service("web", (Endpoint("10.0.0.1", 80),))}
    theirs = {"web": Service("web", (Endpoint("10.0.0.2", 80),)), "api": mine["web"]}
    config = ServerConfig(serve=PORTS, static_services=mine)
    plane = build_plane(config, sources=[MemorySource(theirs, name="caller")])
    assert [source.name for source in plane.sources] == ["config", "caller"]
    await plane.start()
    try:
        await wait_for(lambda: plane.view.readiness()[0])
        assert plane.pipeline.merged["web"] == mine["web"]
        assert plane.pipeline.source_of("web") == "config"
        assert plane.pipeline.source_of("api") == "caller"
    finally:
        await plane.stop()


async def test_an_etcd_plane_refuses_names_equal_through_a_suffix_and_shares_health() -> None:
    """With etcd configured, the registry's clash check knows the domain suffixes (two
    names a client would see as one: one is served) and the health checker is elected
    through etcd, as under `xdscp serve`."""
    async with FakeEtcd() as etcd:
        async with EtcdClient(etcd.config()) as writer:
            for name, port in (("web", 80), ("web.svc.local", 81)):
                key, value = encode(build_registration(name, "10.0.0.1", port), Placement())
                await writer.put(key.encode(), value)
        suffixed = TranslateOptions(domain_suffixes=(".svc.local",))
        config = ServerConfig(
            serve=ServeOptions(xds_host="127.0.0.1", xds_port=0, admin_port=0, translate=suffixed),
            etcd=EtcdRegistryConfig(etcd.config(), RegistryLayout()),
        )
        plane = build_plane(config)
        await plane.start()
        try:
            await wait_for(lambda: plane.view.readiness()[0])
            assert len(plane.pipeline.merged) == 1
            clashes = {"reason": "name_clash"}  # refused by the registry, before the merge
            rejected = plane.metrics_registry.get_sample_value(
                "xdscp_registry_rejected_total", clashes
            )
            assert rejected == 1
            assert plane.view.health_status()["mode"] == "etcd"
        finally:
            await plane.stop()
