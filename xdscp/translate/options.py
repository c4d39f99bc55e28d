"""What translation needs besides the services: the listener it exposes, the routes' domains."""

from __future__ import annotations

from dataclasses import dataclass

from xdscp.errors import ValidationError
from xdscp.model import check_int, check_ip

# The ORCA metrics clients copy into their LRS reports (a cluster's
# `lrs_report_endpoint_metrics`): Envoy 1.40 as named metrics per endpoint, grpcio and grpc-go
# (gRFC A85) per locality; without the list none reaches LRS, a named metric only if listed.
LRS_METRICS = ("application_utilization", "cpu_utilization")
_STANDARD_METRICS = frozenset({"cpu_utilization", "mem_utilization", "application_utilization"})
_NAMED = "named_metrics."


@dataclass(frozen=True, slots=True)
class TranslateOptions:
    """Settings of the translation that are not per service.

    `domain_suffixes` adds `NAME<suffix>` domains to each service's virtual host (for example
    `.svc.local`); `default_service` also routes any unmatched Host header to that service.
    `load_reporting`: every cluster asks its clients for load reports (LRS to xdscp itself:
    gRPC clusters name `lrs_server: self`; Envoy clusters carry the ORCA utilizations into
    the reports its bootstrap sends to xdscp); `load_metrics`: the ORCA metrics the reports
    carry (`LRS_METRICS`, and any `named_metrics.NAME`).
    """

    listener_name: str = "xdscp_http"
    listener_address: str = "0.0.0.0"  # noqa: S104 - Envoy's listener, configurable
    listener_port: int = 10000
    route_name: str = "xdscp_routes"
    domain_suffixes: tuple[str, ...] = ()
    default_service: str | None = None
    connect_timeout_ms: int = 1000
    load_reporting: bool = True
    load_metrics: tuple[str, ...] = LRS_METRICS

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "listener_address", check_ip("listener_address", self.listener_address)
        )
        check_int("listener_port", self.listener_port, 1, 65535)
        check_int("connect_timeout_ms", self.connect_timeout_ms, 1, 600_000)
        for metric in self.load_metrics:
            named = metric.startswith(_NAMED) and len(metric) > len(_NAMED)
            if metric not in _STANDARD_METRICS and not named:
                raise ValidationError(
                    "load_metrics", f"not an ORCA metric (or named_metrics.NAME): {metric!r}"
                )
        for suffix in self.domain_suffixes:
            if not suffix or any(c in suffix for c in " /*"):
                raise ValidationError("domain_suffixes", f"not a domain suffix: {suffix!r}")
