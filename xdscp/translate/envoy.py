"""Service → Envoy resources: Cluster, ClusterLoadAssignment, Listener, RouteConfiguration.

Pure functions of their inputs. Anything a client would reject for a reason visible here
raises TranslationError instead of reaching the client.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import groupby
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import struct_pb2

from xdscp.cache.protowire import any_bytes, field
from xdscp.errors import TranslationError
from xdscp.model import UINT32_MAX, BalancingPolicy, Endpoint, Health, Service, UpstreamProtocol
from xdscp.translate.lb import envoy_policy, sends_weights, set_policies
from xdscp.translate.options import TranslateOptions
from xdscp.translate.resilience import envoy_cluster_resilience, envoy_route_action
from xdscp.translate.routes import envoy_route, fault_filter, served_routes

_HEALTH = {
    Health.HEALTHY: health_check_pb2.HEALTHY,
    Health.UNHEALTHY: health_check_pb2.UNHEALTHY,
    Health.DEGRADED: health_check_pb2.DEGRADED,
    Health.DRAINING: health_check_pb2.DRAINING,
}
_DEFAULT = TranslateOptions()
METADATA_NAMESPACE = "xdscp"


def ads_config_source() -> Any:
    """`ConfigSource{ads: {}}` for the v3 API: resources come over the client's ADS stream."""
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    source.ads.SetInParent()  # an empty message that must be present
    return source


def cluster_for(service: Service, options: TranslateOptions | None = None) -> Any:
    """The EDS Cluster (endpoints over ADS) Envoy receives for `service`."""
    options = options or _DEFAULT
    cluster = cluster_pb2.Cluster(name=service.name, type=cluster_pb2.Cluster.EDS)
    cluster.connect_timeout.FromMilliseconds(options.connect_timeout_ms)
    cluster.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
    cluster.common_lb_config.healthy_panic_threshold.value = service.policy.panic_threshold
    set_policies(cluster, [envoy_policy(service.policy)])
    envoy_cluster_resilience(cluster, service.policy)
    if options.load_reporting:
        cluster.lrs_report_endpoint_metrics.extend(options.load_metrics)
    if service.policy.upstream_protocol is UpstreamProtocol.HTTP2:
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].Pack(
            _http2_options(), deterministic=True
        )
    return cluster


HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def _http2_options() -> Any:
    """Plain-text HTTP/2 to every endpoint (what gRPC backends speak)."""
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    return options


def lb_endpoint(endpoint: Endpoint, *, weighted: bool) -> Any:
    """One LbEndpoint: address, health, weight (when `weighted`), hash key and metadata."""
    lb = endpoint_components_pb2.LbEndpoint(health_status=_HEALTH[endpoint.health])
    socket = lb.endpoint.address.socket_address
    socket.address = endpoint.address
    socket.port_value = endpoint.port
    if weighted:
        lb.load_balancing_weight.value = endpoint.weight
    if endpoint.hash_key is not None:
        lb.metadata.filter_metadata["envoy.lb"].update({"hash_key": endpoint.hash_key})
    if endpoint.metadata:
        lb.metadata.filter_metadata[METADATA_NAMESPACE].CopyFrom(
            struct_pb2.Struct(
                fields={k: struct_pb2.Value(string_value=v) for k, v in endpoint.metadata.items()}
            )
        )
    return lb


def _group_weight(service: Service, group: Sequence[Endpoint], weighted: bool) -> int:
    total = sum(e.weight for e in group) if weighted else len(group)
    if total > UINT32_MAX:
        raise TranslationError(
            f"{service.name}: locality {group[0].locality} at priority {group[0].priority} "
            f"weighs {total}, more than {UINT32_MAX} (Envoy rejects it)"
        )
    return total


def _check_priority_totals(service: Service, weighted: bool) -> None:
    for priority, members in groupby(service.endpoints, key=lambda e: e.priority):
        total = sum(e.weight if weighted else 1 for e in members)
        if total > UINT32_MAX:
            raise TranslationError(
                f"{service.name}: endpoint weights at priority {priority} add up to {total}, "
                f"more than {UINT32_MAX} (Envoy rejects it)"
            )


def load_assignment_for(service: Service, options: TranslateOptions | None = None) -> Any:
    """The ClusterLoadAssignment: one locality group per (priority, locality), weights set."""
    del options  # the same for every listener configuration
    weighted = sends_weights(service.policy)
    _check_priority_totals(service, weighted)
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=service.name)
    cla.policy.overprovisioning_factor.value = service.policy.overprovisioning_factor
    for (priority, locality), members in groupby(
        service.endpoints, key=lambda e: (e.priority, e.locality)
    ):
        group = list(members)
        lle = cla.endpoints.add(priority=priority)
        lle.locality.region, lle.locality.zone, lle.locality.sub_zone = (
            locality.region,
            locality.zone,
            locality.sub_zone,
        )
        # Always set: gRPC clients drop a locality without a weight.
        lle.load_balancing_weight.value = _group_weight(service, group, weighted)
        lle.lb_endpoints.extend(lb_endpoint(e, weighted=weighted) for e in group)
    return cla


def _domains(name: str, options: TranslateOptions) -> list[str]:
    hosts = [name, *(name + suffix for suffix in options.domain_suffixes)]
    return [d for host in hosts for d in (host, f"{host}:*")]


def _virtual_host(  # noqa: PLR0917 - one call shape for the hosts with and without routes
    name: str,
    domains: Iterable[str],
    cluster: str,
    policy: BalancingPolicy | None,
    service: Service | None = None,
    present: Collection[str] = (),
) -> Any:
    """The virtual host sending to `cluster`; with a `service` that has routes, its routes
    (targets cut to the `present` services, `translate/routes.py`)."""
    if service is not None and service.routes is not None:
        routes = [envoy_route(r, service) for r in served_routes(service, present)]
        return route_components_pb2.VirtualHost(name=name, domains=list(domains), routes=routes)
    route = route_components_pb2.Route(route=route_components_pb2.RouteAction(cluster=cluster))
    route.match.prefix = "/"
    if policy is not None:
        envoy_route_action(route.route, policy)  # retries and timeout of the service
    return route_components_pb2.VirtualHost(name=name, domains=list(domains), routes=[route])


def route_configuration(
    service_names: Sequence[str],
    options: TranslateOptions | None = None,
    policies: Mapping[str, BalancingPolicy] | None = None,
    services: Mapping[str, Service] | None = None,
) -> Any:
    """One virtual host per service (Host `NAME` or `NAME:port`), with the service's retries
    and timeout from `policies` (its routes, when `services` has them); never a route to an
    unknown cluster: `service_names` must be the clusters the same snapshot carries."""
    options = options or _DEFAULT
    policies = policies or {}
    services = services or {}
    config = route_pb2.RouteConfiguration(name=options.route_name)
    config.virtual_hosts.extend(
        _virtual_host(
            name,
            _domains(name, options),
            name,
            policies.get(name),
            services.get(name),
            service_names,
        )
        for name in sorted(service_names)
    )
    default = options.default_service
    if default is not None and default in service_names:
        config.virtual_hosts.append(
            _virtual_host(
                "default",
                ["*"],
                default,
                policies.get(default),
                services.get(default),
                service_names,
            )
        )
    return config


ROUTE_CONFIGURATION_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
_RC_NAME, _RC_VIRTUAL_HOSTS = 1, 2  # RouteConfiguration field numbers


def virtual_host_bytes(
    name: str,
    options: TranslateOptions | None = None,
    policy: BalancingPolicy | None = None,
    service: Service | None = None,
    present: Collection[str] = (),
) -> bytes:
    """One service's serialized virtual host (cached per service by the translator)."""
    host = _virtual_host(name, _domains(name, options or _DEFAULT), name, policy, service, present)
    return bytes(host.SerializeToString(deterministic=True))


def route_configuration_any(
    hosts: Iterable[bytes],
    service_names: Collection[str],
    options: TranslateOptions | None = None,
    default_policy: BalancingPolicy | None = None,
    default_service: Service | None = None,
) -> bytes:
    """`route_configuration(...)` packed in an `Any`, assembled from serialized virtual
    hosts (in service-name order), byte for byte what packing the message would give: a
    change to the set of services costs a join of cached bytes, not a new 10,000-host
    message. `default_policy` is the default service's (its retries and timeout), and
    `default_service` the service itself (its routes)."""
    options = options or _DEFAULT
    parts = [field(_RC_NAME, options.route_name.encode())]
    parts.extend(field(_RC_VIRTUAL_HOSTS, host) for host in hosts)
    default = options.default_service
    if default is not None and default in service_names:
        fallback = _virtual_host(
            "default", ["*"], default, default_policy, default_service, service_names
        )
        parts.append(field(_RC_VIRTUAL_HOSTS, fallback.SerializeToString(deterministic=True)))
    return any_bytes(ROUTE_CONFIGURATION_TYPE, b"".join(parts))


def http_listener(options: TranslateOptions | None = None) -> Any:
    """The one HTTP listener Envoy proxies through, its routes fetched by RDS over ADS; the
    fault filter, then the router."""
    options = options or _DEFAULT
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix="xdscp", codec_type=hcm_pb2.HttpConnectionManager.AUTO
    )
    manager.rds.route_config_name = options.route_name
    manager.rds.config_source.CopyFrom(ads_config_source())
    # Always there (an empty config is a no-op): a route's fault never changes the listener,
    # which would drain every connection.
    manager.http_filters.append(fault_filter(optional=False))
    router = manager.http_filters.add(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router(), deterministic=True)
    chain = listener_components_pb2.FilterChain()
    network = chain.filters.add(name="envoy.filters.network.http_connection_manager")
    network.typed_config.Pack(manager, deterministic=True)
    return listener_pb2.Listener(
        name=options.listener_name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(
                address=options.listener_address, port_value=options.listener_port
            )
        ),
        filter_chains=[chain],
    )


__all__ = [
    "cluster_for",
    "http_listener",
    "load_assignment_for",
    "route_configuration",
]
