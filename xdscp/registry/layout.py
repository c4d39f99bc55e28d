"""Where the registry lives in etcd: the prefixes of native endpoints, policies and routes, the
grpc-go naming targets and the services they feed, the value size limit, and the domain
suffixes clients add to names (names equal through them clash).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xdscp.errors import ValidationError
from xdscp.model import check_service_name
from xdscp.registry.codec import MAX_VALUE_BYTES

DEFAULT_SERVICES_PREFIX = "/xdscp/services/"
DEFAULT_POLICIES_PREFIX = "/xdscp/policies/"
DEFAULT_ROUTES_PREFIX = "/xdscp/routes/"

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class GrpcGoTarget:
    """A grpc-go naming target (`<target>/<id>` keys) and the service it feeds."""

    target: str
    service: str

    @classmethod
    def parse(cls, text: str) -> GrpcGoTarget:
        """`SERVICE=TARGET`, or `TARGET` alone: the service is then named after the target's
        last path segment (`foo/bar/my-service` feeds `my-service`, which gRPC clients dial
        as `xds:///my-service`)."""
        service, sep, target = text.partition("=")
        if not sep:
            target, service = text, text.rpartition("/")[2]
        if not target or target.endswith("/"):
            raise ValidationError("grpc_target", f"needs a target without trailing /: {text!r}")
        if _CONTROL.search(target):
            raise ValidationError("grpc_target", f"must not hold control characters: {text!r}")
        try:
            check_service_name(service, "grpc_target")
        except ValidationError as exc:
            origin = "" if sep else f"the service name is derived from the target ({service!r}); "
            raise ValidationError(
                "grpc_target",
                f"{text!r}: {origin}service names {exc.message.partition(', got')[0]};"
                " name the service explicitly as SERVICE=TARGET",
            ) from None
        return cls(target, service)

    @property
    def prefix(self) -> str:
        """The key prefix, `<target>/` (so `svc` never matches `svc2/...`)."""
        return f"{self.target}/"


@dataclass(frozen=True, slots=True)
class RegistryLayout:
    """Where the registry lives in etcd, and the domain suffixes clients add to names
    (`TranslateOptions.domain_suffixes`: names equal through them clash)."""

    services_prefix: str = DEFAULT_SERVICES_PREFIX
    policies_prefix: str = DEFAULT_POLICIES_PREFIX
    grpc_targets: tuple[GrpcGoTarget, ...] = ()
    max_value_bytes: int = MAX_VALUE_BYTES
    domain_suffixes: tuple[str, ...] = ()
    routes_prefix: str = DEFAULT_ROUTES_PREFIX
