"""The one exception hierarchy of xdscp.

Errors raised by etcd, DNS and gRPC libraries are mapped into these classes at the boundary
(the etcd client, the DNS resolver, the xDS servicer), so callers only ever catch `XdscpError`
subclasses.
"""

from __future__ import annotations


class XdscpError(Exception):
    """Base class of every error xdscp raises on purpose."""


class ValidationError(XdscpError, ValueError):
    """A value is outside what xdscp (or the proxies it serves) accepts.

    `field` names the offending field (dotted path), so CLI output, logs and the registry's
    rejection counter can say exactly what was wrong.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConfigError(XdscpError):
    """xdscp's own configuration (flags, files, environment) is invalid."""


class ConfigFieldError(ConfigError):
    """One value of a configuration file (or of an environment override) is invalid.

    `origin` is where the value came from (`FILE:LINE`, or the environment variable that set
    it) and `field` its path (`sources.static.services.web.endpoints[1].weight`), so the
    message points at the line to fix.
    """

    def __init__(self, origin: str, field: str, message: str) -> None:
        super().__init__(f"{origin}: {field}: {message}" if field else f"{origin}: {message}")
        self.origin = origin
        self.field = field
        self.message = message


class BalancerError(XdscpError):
    """The reference balancer cannot build a balancer for the given cluster.

    Raised where the real client would reject the configuration (a NACK), with the reason the
    client would give.
    """


class TranslationError(XdscpError):
    """A service cannot be translated into resources a client would accept."""


class SourceError(XdscpError):
    """A discovery source (etcd, DNS) failed."""


class EtcdError(SourceError):
    """An etcd request failed."""


class EtcdUnavailableError(EtcdError):
    """No etcd endpoint could be reached."""


class EtcdAuthError(EtcdError):
    """etcd refused the credentials or the permission: retrying cannot help."""


class EtcdTooLargeError(EtcdError):
    """A response would exceed the client's receive limit (RESOURCE_EXHAUSTED)."""


class EtcdCompactedError(EtcdError):
    """A watch asked for a revision that etcd has compacted away."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted; oldest available is {compact_revision}")
        self.compact_revision = compact_revision


class RegistrationError(XdscpError):
    """A registration's key is not its own: held by another lease, or removed under it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class KeyHeldError(RegistrationError):
    """The key is held by another lease (another registrar) or by none (written by hand):
    a registration never overwrites it. `holder` is that lease (0: none), `ttl_left` its
    seconds left (-1: none or unknown)."""

    def __init__(self, key: str, holder: int, ttl_left: int, message: str) -> None:
        super().__init__(key, message)
        self.holder = holder
        self.ttl_left = ttl_left


class KeyRemovedError(RegistrationError):
    """The key was deleted by someone else (`xdscp deregister`, a delete) while its lease
    lived: the registration ends, and is not written back."""


class DnsError(SourceError):
    """A DNS lookup failed (SERVFAIL, timeout, refused, NXDOMAIN)."""


class ProcessError(XdscpError):
    """A child process (etcd, Envoy, a backend) could not be started or stopped."""


class BindError(XdscpError):
    """An address xdscp was told to listen on cannot be listened on (one line: the address,
    why, and what to do)."""


class StreamAbortError(XdscpError):
    """An xDS stream must end with an error status (the servicer maps each subclass to one)."""


class UndecodableRequestError(StreamAbortError):
    """A request could not be deserialized (INVALID_ARGUMENT)."""


class InvalidRequestError(StreamAbortError):
    """A request the protocol does not allow, such as one without a type URL on ADS."""


class SlowClientError(StreamAbortError):
    """The client did not read a response for the write timeout (RESOURCE_EXHAUSTED)."""


class InvalidMatcherError(ValidationError):
    """A CSDS request's node matcher is malformed or uses what xdscp does not support."""
