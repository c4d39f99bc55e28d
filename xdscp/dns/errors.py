"""DnsError subclasses, one per failure reason (dnspython errors are mapped into these).

Every class carries `reason`, a constant used as the `reason` label of
`xdscp_dns_failures_total` and in log events. `transient` tells the refresh state machine
whether the answer says something about the name (NXDOMAIN, no records) or only about the
path to it (SERVFAIL, timeout, REFUSED, network errors).
"""

from __future__ import annotations

from typing import ClassVar

from xdscp.errors import DnsError


class DnsLookupError(DnsError):
    """A lookup failed; `name` is the queried name, `reason` the failure kind."""

    reason: ClassVar[str] = "error"
    transient: ClassVar[bool] = True

    def __init__(self, name: str, detail: str = "") -> None:
        text = f"{name}: {self.reason}"
        super().__init__(f"{text} ({detail})" if detail else text)
        self.name = name
        self.detail = detail


class DnsServfailError(DnsLookupError):
    """The nameserver answered SERVFAIL."""

    reason = "servfail"


class DnsRefusedError(DnsLookupError):
    """The nameserver answered REFUSED."""

    reason = "refused"


class DnsTimeoutError(DnsLookupError):
    """No answer within the configured timeout."""

    reason = "timeout"


class DnsNxdomainError(DnsLookupError):
    """NXDOMAIN: the name does not exist."""

    reason = "nxdomain"
    transient = False


class DnsNoDataError(DnsLookupError):
    """The name exists but has no records of the asked type (or an SRV set gave no address)."""

    reason = "nodata"
    transient = False
