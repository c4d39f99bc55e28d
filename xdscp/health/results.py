"""Where the replicas coordinate in etcd, and how a verdict is written there: sans I/O.

Beside the registry's folders (`/xdscp/services/` gives `/xdscp/_health/`):

- `<health>/leader`: the replica that checks, written with its lease (value: its identity);
- `<health>/results/<service>/<ip:port>`: one endpoint's verdict, JSON
  `{"verdict": "unhealthy", "checker": "<identity>", "at": <unix seconds>}`, without a lease,
  so a new checker starts from the verdicts of the last (a failing endpoint stays out of
  rotation across a change of checker).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from xdscp.errors import ValidationError
from xdscp.health.machine import Verdict
from xdscp.health.targets import TargetKey
from xdscp.model import check_service_name, format_host_port, parse_host_port
from xdscp.registry import decode_key, load_object

MAX_RESULT_BYTES = 1024


def health_prefix(services_prefix: str) -> str:
    """`<registry root>/_health/` for a services prefix: `/xdscp/services/` gives
    `/xdscp/_health/`."""
    root = services_prefix.rstrip("/").rpartition("/")[0]
    return f"{root}/_health/"


@dataclass(frozen=True, slots=True)
class HealthLayout:
    """The keys under one health prefix (ending in `/`)."""

    prefix: str = "/xdscp/_health/"
    _results: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.prefix.endswith("/"):
            raise ValidationError("health_prefix", f"must end with '/', got {self.prefix!r}")
        object.__setattr__(self, "_results", f"{self.prefix}results/")

    @property
    def leader_key(self) -> bytes:
        """The election key."""
        return f"{self.prefix}leader".encode()

    @property
    def results_prefix(self) -> bytes:
        """Every verdict's key starts with this."""
        return self._results.encode()

    def result_key(self, key: TargetKey) -> bytes:
        """The key of one endpoint's verdict."""
        service, endpoint = key
        return self.results_prefix + f"{service}/{endpoint}".encode()

    def parse_key(self, raw: bytes) -> TargetKey:
        """(service, endpoint) of a verdict's key; ValidationError when it is not one."""
        try:
            text = decode_key(raw)  # short, strict UTF-8, no control characters
        except ValidationError as exc:
            raise ValidationError("health_result.key", exc.message) from None
        rest = text.removeprefix(self._results)
        service, sep, endpoint = rest.partition("/")
        if rest == text or not sep or not endpoint or "/" in endpoint:
            raise ValidationError("health_result.key", f"not <service>/<ip:port>: {text!r}")
        check_service_name(service, "health_result.key")
        host, port = parse_host_port(endpoint, field="health_result.key")
        if format_host_port(host, port) != endpoint:
            raise ValidationError("health_result.key", f"not <service>/<ip:port>: {text!r}")
        return service, endpoint


def encode_result(verdict: Verdict, checker: str, at: float) -> bytes:
    """The JSON value of one verdict."""
    return json.dumps({"verdict": str(verdict), "checker": checker, "at": round(at, 3)}).encode()


def parse_result(raw: bytes) -> Verdict:
    """The verdict of a stored value; ValidationError naming what is wrong."""
    try:
        data = load_object(raw, MAX_RESULT_BYTES)  # size, strict UTF-8, depth, a JSON object
    except ValidationError as exc:
        raise ValidationError("health_result", exc.message) from None
    verdict = data.get("verdict")
    allowed = (Verdict.HEALTHY.value, Verdict.UNHEALTHY.value)
    if verdict not in allowed:
        raise ValidationError(
            "health_result.verdict", f"must be one of {', '.join(allowed)}, got {verdict!r}"
        )
    return Verdict(verdict)
