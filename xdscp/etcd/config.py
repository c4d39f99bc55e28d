"""Connection settings for the etcd client: endpoints, TLS and authentication."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xdscp.errors import ConfigError, ValidationError
from xdscp.model import format_host_port, parse_host_port

DEFAULT_ENDPOINT = "http://127.0.0.1:2379"


@dataclass(frozen=True, slots=True)
class EtcdEndpoint:
    """One etcd member's client address."""

    host: str
    port: int
    secure: bool

    @property
    def target(self) -> str:
        """The gRPC target (`host:port`, IPv6 in brackets)."""
        return format_host_port(self.host, self.port)

    def __str__(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.target}"


def parse_endpoint(url: str, *, tls: bool = False) -> EtcdEndpoint:
    """Parse `http://host:port`, `https://host:port` or `host:port` (TLS when `tls`)."""
    scheme, sep, address = url.strip().partition("://")
    if not sep:
        scheme, address = ("https" if tls else "http"), scheme
    if scheme not in {"http", "https"} or not address:
        raise ConfigError(f"etcd endpoint must look like http(s)://host:port, got {url!r}")
    address = address.removesuffix("/")
    if "/" in address:
        raise ConfigError(f"etcd endpoint must not have a path: {url!r}")
    try:
        host, port = parse_host_port(address, field="etcd endpoint", default_port=2379)
    except ValidationError as exc:
        raise ConfigError(f"{exc.message}: {url!r}") from None
    return EtcdEndpoint(host, port, scheme == "https" or tls)


@dataclass(frozen=True, slots=True)
class EtcdConfig:
    """How to reach etcd. TLS is used when any endpoint is https or a CA file is given."""

    endpoints: tuple[str, ...] = (DEFAULT_ENDPOINT,)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None
    request_timeout: float = 5.0
    connect_timeout: float = 2.0
    max_backoff: float = 2.0
    page_size: int = 2000
    max_receive_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ConfigError("at least one etcd endpoint is needed")
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("an etcd client certificate needs both cert_file and key_file")
        if (self.username is None) != (self.password is None):
            raise ConfigError("etcd authentication needs both username and password")
        for path in (self.ca_file, self.cert_file, self.key_file):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"etcd TLS file not found: {path}")
        if self.page_size < 1 or self.request_timeout <= 0 or self.connect_timeout <= 0:
            raise ConfigError("page_size, request_timeout and connect_timeout must be positive")
        self.parsed_endpoints()

    @property
    def tls(self) -> bool:
        """True when connections use TLS."""
        return self.ca_file is not None or any(
            e.strip().startswith("https://") for e in self.endpoints
        )

    def parsed_endpoints(self) -> tuple[EtcdEndpoint, ...]:
        """The endpoints, parsed and validated."""
        return tuple(parse_endpoint(url, tls=self.tls) for url in self.endpoints)
