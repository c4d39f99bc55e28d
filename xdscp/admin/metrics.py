"""The process's own metrics on the plane's metrics registry: CPU, memory, file descriptors, garbage
collection, the platform, and `xdscp_build_info`.

prometheus_client's collectors register on its global registry unless given another; xdscp
exposes only its own `CollectorRegistry`, so they are added to it here (by the plane, once).
The `*_created` series are switched off by the entry point (`xdscp serve`), not here:
that switch is process-wide, and importing a module must not change the process.
"""

from __future__ import annotations

import importlib.metadata
import platform

import grpc
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_labels() -> dict[str, str]:
    """What this xdscp is built from: its version, Python's, grpcio's and xds-protos' (the
    Envoy API protos)."""
    return {
        "version": _version("xdscp"),
        "python": platform.python_version(),
        "grpc": grpc.__version__,
        "envoy_protos": _version("xds-protos"),
    }


def register_process_metrics(metrics_registry: CollectorRegistry) -> None:
    """`process_*`, `python_gc_*`, `python_info` and `xdscp_build_info` (value 1, the
    versions as labels) on `metrics_registry`."""
    ProcessCollector(registry=metrics_registry)
    PlatformCollector(registry=metrics_registry)
    GCCollector(registry=metrics_registry)
    build = Info(
        "xdscp_build",
        "The xdscp build: its version and its dependencies'",
        registry=metrics_registry,
    )
    build.info(build_labels())
