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
from dataclasses import dataclass

from xdscp.errors import ValidationError
from xdscp.health.machine import Verdict
from xdscp.health.targets import TargetKey
from xdscp.model import check_service_name

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

    def __post_init__(self) -> None:
        if not self.prefix.endswith("/"):
            raise ValidationError("health_prefix", f"must end with '/', got {self.prefix!r}")

    @property
    def leader_key(self) -> bytes:
        """The election key."""
        return f"{self.prefix}leader".encode()

    @property
    def results_prefix(self) -> bytes:
        """Every verdict's key starts with this."""
        return f"{self.prefix}results/".encode()

    def result_key(self, key: TargetKey) -> bytes:
        """The key of one endpoint's verdict."""
        service, endpoint = key
        return self.results_prefix + f"{service}/{endpoint}".encode()

    def parse_key(self, raw: bytes) -> TargetKey:
        """(service, endpoint) of a verdict's key; ValidationError when it is not one."""
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise ValidationError("health_result.key", f"not UTF-8: {raw[:80]!r}") from None
        rest = text.removeprefix(self.results_prefix.decode())
        service, sep, endpoint = rest.partition("/")
        if rest == text or not sep or not endpoint or "/" in endpoint:
            raise ValidationError("health_result.key", f"not <service>/<ip:port>: {text!r}")
        check_service_name(service, "health_result.key")
        return service, endpoint


def encode_result(verdict: Verdict, checker: str, at: float) -> bytes:
    """The JSON value of one verdict."""
    return json.dumps({"verdict": str(verdict), "checker": checker, "at": round(at, 3)}).encode()


def parse_result(raw: bytes) -> Verdict:
    """The verdict of a stored value; ValidationError naming what is wrong."""
    if len(raw) > MAX_RESULT_BYTES:
        raise ValidationError("health_result", f"over {MAX_RESULT_BYTES} bytes ({len(raw)})")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError("health_result", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError("health_result", f"must be a JSON object, got {type(data).__name__}")
    verdict = data.get("verdict")
    allowed = (Verdict.HEALTHY.value, Verdict.UNHEALTHY.value)
    if verdict not in allowed:
        raise ValidationError(
            "health_result.verdict", f"must be one of {', '.join(allowed)}, got {verdict!r}"
        )
    return Verdict(verdict)
