"""Translation: services and policies → the xDS resources each kind of client accepts.

Pure and deterministic: the same services give the same bytes and versions on every run and
every replica (versions are content hashes). Built only here.
"""

from xdscp.translate.clients import ClientResources, client_resources, route_hash_policies
from xdscp.translate.envoy import (
    cluster_for,
    http_listener,
    load_assignment_for,
    route_configuration,
)
from xdscp.translate.grpc import grpc_cluster, grpc_load_assignment, grpc_route_configuration
from xdscp.translate.incremental import ClientTranslator, Rejection, TranslationResult
from xdscp.translate.options import TranslateOptions
from xdscp.translate.translator import (
    EnvoyTranslator,
    GrpcTranslator,
    envoy_service_resources,
    translate,
    translator_for,
)

__all__ = [
    "ClientResources",
    "ClientTranslator",
    "EnvoyTranslator",
    "GrpcTranslator",
    "Rejection",
    "TranslateOptions",
    "TranslationResult",
    "client_resources",
    "cluster_for",
    "envoy_service_resources",
    "grpc_cluster",
    "grpc_load_assignment",
    "grpc_route_configuration",
    "http_listener",
    "load_assignment_for",
    "route_configuration",
    "route_hash_policies",
    "translate",
    "translator_for",
]
