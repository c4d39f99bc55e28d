"""The sections of `serve`'s configuration file: its `SCHEMA`, and each section checked
into the typed value it configures (`xds`/`admin`/`listener` → `ServeOptions`, the `sources`
→ static services, `EtcdRegistryConfig`, `DnsConfig`). `load.py` assembles them (see its docstring
for the file's layout).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from xdscp.config.options import LoadReporting, ServeOptions, XdsTls
from xdscp.config.raw import (
    INT,
    LIST,
    STR,
    YAML,
    FieldPath,
    RawConfig,
    field_name,
    parse_field,
)
from xdscp.dns import DnsConfig, load_dns_config
from xdscp.errors import ConfigError, ConfigFieldError, ValidationError
from xdscp.etcd import DEFAULT_ENDPOINT, EtcdConfig, parse_endpoint
from xdscp.model import check_service_name, parse_host_port
from xdscp.registry import (
    DEFAULT_POLICIES_PREFIX,
    DEFAULT_ROUTES_PREFIX,
    DEFAULT_SERVICES_PREFIX,
    GrpcGoTarget,
    RegistryLayout,
)
from xdscp.server import grouper
from xdscp.translate import TranslateOptions

SCHEMA: dict[str, Any] = {
    "xds": {
        "address": STR,
        "group_by": STR,
        "tls": {"cert": STR, "key": STR, "client_ca": STR},
        "write_timeout": YAML,
        "load_reporting": {
            "enabled": YAML,
            "interval": YAML,
            "stale_after": YAML,
            "max_entries": YAML,
            "metrics": LIST,
        },
        "weigh_interval": YAML,
    },
    "admin": {"address": STR},
    "listener": {
        "address": STR,
        "port": INT,
        "domain_suffixes": LIST,
        "default_service": STR,
    },
    "sources": {
        "static": {"services": YAML, "file": STR},
        "etcd": {
            "endpoints": LIST,
            "services_prefix": STR,
            "policies_prefix": STR,
            "routes_prefix": STR,
            "grpc_targets": LIST,
            "tls": {"ca": STR, "cert": STR, "key": STR},
            "username": STR,
            "password": STR,
        },
        "dns": YAML,
    },
}
"""Every key of the file: a section (dict) or a leaf read from the environment as `str`,
`int`, a comma-separated `list`, or `yaml` (free-form subtrees checked by their own loader)."""

_DNS_KEYS = ("services", "resolver", "refresh")


@dataclass(frozen=True)
class EtcdRegistryConfig:
    """How to reach etcd and where the registry lives in it."""

    client: EtcdConfig
    layout: RegistryLayout


def _address(raw: RawConfig, path: FieldPath, host: str, port: int) -> tuple[str, int]:
    value = raw.get(path)
    if value is None:
        return host, port
    try:
        return parse_host_port(value, min_port=0)
    except ValidationError as exc:
        raise raw.error(path, exc.message) from None


def serve_options(raw: RawConfig) -> ServeOptions:
    raw.mapping(("xds",), SCHEMA["xds"])
    raw.mapping(("admin",), SCHEMA["admin"])
    default = ServeOptions()
    xds = _address(raw, ("xds", "address"), default.xds_host, default.xds_port)
    admin = _address(raw, ("admin", "address"), default.admin_host, default.admin_port)
    group_by = raw.string(("xds", "group_by"), default.group_by) or default.group_by
    try:
        grouper(group_by)
    except ConfigError as exc:
        raise raw.wrap(("xds", "group_by"), exc) from None
    timeout = raw.get(("xds", "write_timeout"), default.write_timeout_s)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise raw.error(("xds", "write_timeout"), f"must be seconds > 0, got {timeout!r}")
    load, translate = _load_reporting(raw, _translate(raw))
    weigh = raw.get(("xds", "weigh_interval"), default.weigh_interval_s)
    if isinstance(weigh, bool) or not isinstance(weigh, int | float) or not 0 < weigh <= 3600:
        raise raw.error(("xds", "weigh_interval"), f"must be seconds in (0, 3600], got {weigh!r}")
    return ServeOptions(
        *xds, *admin, translate, group_by=group_by, tls=_xds_tls(raw),
        write_timeout_s=float(timeout), load=load, weigh_interval_s=float(weigh),
    )  # fmt: skip


def _load_reporting(
    raw: RawConfig, translate: TranslateOptions
) -> tuple[LoadReporting, TranslateOptions]:
    """`xds.load_reporting`: the LRS settings, and the translation told whether clients
    report and which ORCA metrics their reports carry."""
    path: FieldPath = ("xds", "load_reporting")
    raw.mapping(path, SCHEMA["xds"]["load_reporting"])
    default = LoadReporting()
    enabled = raw.get((*path, "enabled"), translate.load_reporting)
    if not isinstance(enabled, bool):
        raise raw.error((*path, "enabled"), f"must be true or false, got {enabled!r}")
    try:
        load = LoadReporting(
            interval_s=raw.get((*path, "interval"), default.interval_s),
            stale_after_s=raw.get((*path, "stale_after"), default.stale_after_s),
            max_entries=raw.get((*path, "max_entries"), default.max_entries),
        )
    except ValidationError as exc:
        renames = {"load_reporting.interval": ("interval",),
                   "load_reporting.stale_after": ("stale_after",),
                   "load_reporting.max_entries": ("max_entries",)}  # fmt: skip
        raise raw.wrap(path, exc, renames) from None
    metrics = raw.strings((*path, "metrics"))
    try:
        translate = dataclasses.replace(
            translate, load_reporting=enabled, load_metrics=metrics or translate.load_metrics
        )
    except ValidationError as exc:
        raise raw.error((*path, "metrics"), exc.message) from None
    return load, translate


def _translate(raw: RawConfig) -> TranslateOptions:
    path: FieldPath = ("listener",)
    raw.mapping(path, SCHEMA["listener"])
    default = TranslateOptions()
    service = raw.string((*path, "default_service"))
    try:
        service = None if service is None else check_service_name(service, "default_service")
        return TranslateOptions(
            listener_address=raw.get((*path, "address"), default.listener_address),
            listener_port=raw.get((*path, "port"), default.listener_port),
            domain_suffixes=raw.strings((*path, "domain_suffixes")) or (),
            default_service=None
            if service is None
            else check_service_name(service, "default_service"),
        )
    except ValidationError as exc:
        renames = {"listener_address": ("address",), "listener_port": ("port",)}
        raise raw.wrap(path, exc, renames) from None


def _pair(raw: RawConfig, path: FieldPath, first: str, second: str) -> None:
    """Both keys or neither: the missing one is named, at the line of the one given."""
    a, b = raw.get((*path, first)), raw.get((*path, second))
    if (a is None) != (b is None):
        given, missing = (first, second) if b is None else (second, first)
        where = raw.origin((*path, given))
        message = f"is required when {given} is set"
        raise ConfigFieldError(where, field_name((*path, missing)), message)


def _xds_tls(raw: RawConfig) -> XdsTls | None:
    path: FieldPath = ("xds", "tls")
    if not raw.mapping(path, SCHEMA["xds"]["tls"]):
        return None
    _pair(raw, path, "cert", "key")
    cert, key = raw.file((*path, "cert")), raw.file((*path, "key"))
    if cert is None or key is None:
        raise raw.error((*path, "cert"), "is required when xds.tls is set")
    return XdsTls(cert, key, raw.file((*path, "client_ca")))


def etcd_section(raw: RawConfig, path: FieldPath) -> EtcdRegistryConfig:
    raw.mapping(path, SCHEMA["sources"]["etcd"])
    endpoints = raw.strings((*path, "endpoints"))
    if endpoints == ():
        raise raw.error((*path, "endpoints"), "needs at least one URL")
    for index, url in enumerate(endpoints or ()):
        try:
            parse_endpoint(url)
        except ConfigError as exc:
            raise raw.wrap((*path, "endpoints", index), exc) from None
    tls = (*path, "tls")
    raw.mapping(tls, SCHEMA["sources"]["etcd"]["tls"])
    _pair(raw, tls, "cert", "key")
    _pair(raw, path, "username", "password")
    targets = []
    for index, text in enumerate(raw.strings((*path, "grpc_targets")) or ()):
        try:
            targets.append(GrpcGoTarget.parse(text))
        except ValidationError as exc:
            raise raw.error((*path, "grpc_targets", index), exc.message) from None
    layout = RegistryLayout(
        raw.string((*path, "services_prefix"), DEFAULT_SERVICES_PREFIX) or "",
        raw.string((*path, "policies_prefix"), DEFAULT_POLICIES_PREFIX) or "",
        tuple(targets),
        routes_prefix=raw.string((*path, "routes_prefix"), DEFAULT_ROUTES_PREFIX) or "",
    )
    settings: dict[str, Any] = {
        "endpoints": endpoints or (DEFAULT_ENDPOINT,),
        "ca_file": raw.file((*tls, "ca")),
        "cert_file": raw.file((*tls, "cert")),
        "key_file": raw.file((*tls, "key")),
        "username": raw.string((*path, "username")),
        "password": raw.string((*path, "password")),
    }
    try:
        client = EtcdConfig(**settings)
    except ConfigError as exc:
        raise raw.wrap(path, exc) from None
    return EtcdRegistryConfig(client, layout)


def dns_section(raw: RawConfig, path: FieldPath) -> DnsConfig:
    """The DNS loader's own rules; its `dns.` field paths are moved under `sources.dns`."""
    try:
        return load_dns_config(raw.mapping(path, _DNS_KEYS))
    except ValidationError as exc:
        raise raw.error((*path, *parse_field(exc.field)[1:]), exc.message) from None
