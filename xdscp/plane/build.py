"""The one composition root: `build_plane(config)` builds the plane `xdscp serve` runs.

Every part is built once, here, and handed what it needs: the configured sources (the
configuration file's services, the `--static` file, DNS, the etcd registry with its client
and layout, the registry told the translator's domain suffixes for its clash check), the
health stage (sharing one checker through etcd when the registry is etcd's), the pipeline,
the xDS services, the source monitor and the admin server with its view. `xdscp serve`, the
benchmarks and the tests all build their plane here, so each gets the same plane; sources
the caller built itself (`sources=`) come after the configured ones.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from xdscp.admin import NODES, SERVICES, SOURCES, AdminServer, ChangeFeed
from xdscp.admin.metrics import register_process_metrics
from xdscp.cache import SnapshotCache
from xdscp.config import ConfigServicesSource, ServerConfig
from xdscp.dns import DnsConfig, DnsMetrics, DnsResolver
from xdscp.etcd import EtcdClient
from xdscp.health import HealthCoordination, HealthLayout, HealthMetrics, HealthStage, health_prefix
from xdscp.load import LoadBook, LoadSamples
from xdscp.load.lrs import LrsService
from xdscp.model import ClientKind
from xdscp.plane.control import ControlPlane, Loads, Serving
from xdscp.plane.load import LoadMetrics, PlaneLoad
from xdscp.plane.pipeline import Pipeline
from xdscp.plane.shared_load import FleetMetrics, LoadCoordination, SharedLoad, load_prefix
from xdscp.plane.shared_weights import SharedWeights, WeightsCoordination, weights_prefix
from xdscp.plane.source_health import SourceMonitor
from xdscp.plane.view import PlaneView
from xdscp.server import CsdsService, StatusBoard, StreamEvent, XdsMetrics, XdsService, grouper
from xdscp.sources import (
    DnsSource,
    EtcdRegistrySource,
    MemorySource,
    RegistryMetrics,
    Source,
    StaticSource,
)
from xdscp.translate import translator_for

StreamObserver = Callable[[StreamEvent], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Configured:
    """The configured sources, in precedence order, and what they share: the etcd client
    (closed when the plane stops), how replicas share one health checker, one publisher of
    computed weights and their clients' load."""

    sources: tuple[Source, ...]
    etcd: EtcdClient | None = None
    coordination: HealthCoordination | None = None
    weights: WeightsCoordination | None = None
    load: LoadCoordination | None = None


def build_plane(
    config: ServerConfig,
    *,
    sources: Sequence[Source] = (),
    loaded: ServerConfig | None = None,
    metrics_registry: CollectorRegistry | None = None,
    observers: Sequence[StreamObserver] = (),
    environ: Mapping[str, str] | None = None,
    load_samples: LoadSamples | None = None,
) -> ControlPlane:
    """The plane `config` describes, not started.

    `sources`: built by the caller, after the configured ones. `loaded`: the configuration
    as the file and environment gave it, before flags (a change of the file is compared with
    it; default `config`). `observers`: told of every stream event. `environ`: the
    environment the configuration file is read again with (default `os.environ`).
    `load_samples`: the clients' load per service, which adaptive services' weights follow
    besides the endpoints' own registered load (default: the served LRS load book's, with an
    etcd registry added to the other replicas' books).
    """
    metrics_registry = metrics_registry or CollectorRegistry()  # shared with the sources' metrics
    register_process_metrics(metrics_registry)
    environment = dict(os.environ if environ is None else environ)
    configured = configured_sources(config, loaded or config, metrics_registry, environment)
    every_source = (*configured.sources, *sources)
    options = config.serve
    serving = _serving(config, metrics_registry, observers)
    translators = {kind: translator_for(kind, options.translate) for kind in ClientKind}
    pipeline = Pipeline(
        [source.name for source in every_source],
        translators,
        domain_suffixes=options.translate.domain_suffixes,
    )
    health = HealthStage(HealthMetrics(metrics_registry), pipeline.overlay, configured.coordination)
    loads = _loads(config, pipeline, serving, metrics_registry)
    shared = fleet = None
    if configured.weights is not None:
        shared = SharedWeights(configured.weights, pipeline.weights.decided)
    if configured.load is not None:
        fleet = SharedLoad(
            configured.load, loads.book.summaries, lambda: pipeline.weights.adaptive,
            FleetMetrics(metrics_registry),
        )  # fmt: skip
    monitor = SourceMonitor(every_source, metrics_registry, lambda: serving.feed.notify(SOURCES))
    view = PlaneView(
        status=serving.status, cache=serving.cache, pipeline=pipeline, health=health,
        sources=monitor, load=loads.book, on_prediction=lambda: serving.feed.notify(SERVICES),
        shared=shared, fleet=fleet,
    )  # fmt: skip
    admin = AdminServer(
        options.admin_host,
        options.admin_port,
        metrics_registry=metrics_registry,
        view=view,
        feed=serving.feed,
    )
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()
    if configured.etcd is not None:
        closers = (configured.etcd.close,)

    return ControlPlane(
        options=options, sources=every_source, pipeline=pipeline, health=health,
        serving=serving, monitor=monitor, view=view, admin=admin, metrics_registry=metrics_registry,
        loads=loads, closers=closers, load_samples=load_samples, shared=shared, fleet=fleet,
    )  # fmt: skip


def _serving(
    config: ServerConfig, metrics_registry: CollectorRegistry, observers: Sequence[StreamObserver]
) -> Serving:
    """The xDS side; node changes and stream events reach the dashboard's feed."""
    options = config.serve
    feed = ChangeFeed()
    status = StatusBoard(on_change=lambda: feed.notify(NODES))
    cache = SnapshotCache()
    metrics = XdsMetrics(metrics_registry)
    service = XdsService(
        cache,
        metrics,
        status,
        grouper=grouper(options.group_by),
        identifier=options.identifier,
        write_timeout_s=options.write_timeout_s,
        observers=[lambda _: feed.notify(NODES), *observers],
    )
    return Serving(metrics, cache, feed, status, service, CsdsService(status))


def _loads(
    config: ServerConfig, pipeline: Pipeline, serving: Serving, metrics_registry: CollectorRegistry
) -> Loads:
    """The load book, taking reports for the services served, from the nodes that receive
    them, and the LRS service feeding it."""
    options = config.serve.load
    book = PlaneLoad(
        LoadBook(options.stale_after_s, options.max_entries),
        LoadMetrics(metrics_registry),
        lambda: pipeline.services,
        serving.status.receives,
        on_change=lambda: serving.feed.notify(SERVICES),
        change_every_s=options.interval_s,
        kind_of=serving.status.kind_of,
    )
    return Loads(book, LrsService(book, options.interval_s, book.clusters, book.endpoint_of))


def configured_sources(
    config: ServerConfig,
    loaded: ServerConfig,
    metrics_registry: CollectorRegistry,
    environ: Mapping[str, str],
) -> Configured:
    """Every configured source, their metrics in `metrics_registry`, in precedence order: the
    file's services, the `--static` file, DNS, etcd; with etcd, its client and how the
    replicas share one health checker (its keys beside the registry's)."""
    sources = _static_sources(config, loaded, environ)
    resolver = None
    if config.dns is not None:
        dns_source, resolver = _dns(config.dns, metrics_registry)
        sources.append(dns_source)
    if config.etcd is None:
        return Configured(tuple(sources))
    client = EtcdClient(config.etcd.client)
    # Names equal through a domain suffix clash in Envoy's route table: the registry refuses
    # the later one, so it needs the suffixes the translator will use. With a dns: section,
    # hostnames in registrations use the same resolver.
    layout = dataclasses.replace(
        config.etcd.layout, domain_suffixes=config.serve.translate.domain_suffixes
    )
    metrics = RegistryMetrics(metrics_registry)
    sources.append(EtcdRegistrySource(client, layout, resolver=resolver, metrics=metrics))
    identity = f"{socket.gethostname()}:{os.getpid()}"
    coordination = HealthCoordination(
        client,
        HealthLayout(health_prefix(layout.services_prefix)),
        identity,
        config.serve.health_lease_ttl_s,
    )
    weights = WeightsCoordination(
        client, weights_prefix(layout.services_prefix), identity,
        config.serve.health_lease_ttl_s, config.serve.weigh_interval_s,
    )  # fmt: skip
    load = LoadCoordination(
        client, load_prefix(layout.services_prefix), identity, config.serve.health_lease_ttl_s,
        config.serve.load.interval_s, config.serve.load.stale_after_s,
    )  # fmt: skip
    return Configured(tuple(sources), client, coordination, weights, load)


def _static_sources(
    config: ServerConfig, loaded: ServerConfig, environ: Mapping[str, str]
) -> list[Source]:
    """The file's own services (re-read when it changes), then the `--static` file."""
    sources: list[Source] = []
    if config.static_services is not None:
        if config.path is not None:
            sources.append(ConfigServicesSource(config.path, environ, loaded))
        else:  # declared in the environment only
            sources.append(MemorySource(config.static_services, name="config"))
    if config.static_file is not None:
        sources.append(StaticSource(Path(config.static_file)))
    return sources


def _dns(config: DnsConfig, metrics_registry: CollectorRegistry) -> tuple[Source, DnsResolver]:
    """The DNS source and its resolver (also used for etcd hostnames)."""
    resolver = DnsResolver(config.resolver)
    source = DnsSource(
        config.services,
        refresh=config.refresh,
        resolver=resolver,
        metrics=DnsMetrics(metrics_registry),
    )
    return source, resolver
