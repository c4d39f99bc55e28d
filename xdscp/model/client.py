"""Which kind of xDS client a node is: each kind accepts different resources."""

from __future__ import annotations

from enum import StrEnum


class ClientKind(StrEnum):
    """The kind of xDS client a translation is made for; each accepts different resources."""

    ENVOY = "envoy"
    GRPC = "grpc"
