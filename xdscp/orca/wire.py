"""The forms a client reads a `LoadReport` in.

HTTP (Envoy 1.40, `source/common/orca/orca_parser.cc`): one response header,
`endpoint-load-metrics`, whose value starts with its format:

- `TEXT cpu_utilization=0.3,rps_fractional=10,named_metrics.foo=1` — comma-separated
  `name=value` pairs (Envoy 1.40 also reads the older `name:value`); names are the five
  number fields and `named_metrics.NAME` (the `utilization` and `request_cost` maps have
  no TEXT form: use JSON or BIN for them);
- `JSON {"cpu_utilization":0.3,...}` — the proto's JSON mapping;
- `BIN <base64 of the serialized xds.data.orca.v3.OrcaLoadReport>`.

gRPC: the per-call trailer `endpoint-load-metrics-bin`, binary metadata holding the serialized
`OrcaLoadReport` (gRPC base64s it on the wire itself); Envoy reads the same trailer from gRPC
upstreams.
"""

from __future__ import annotations

import base64
import enum
import json

from xdscp.errors import ValidationError
from xdscp.orca.report import LoadReport, map_fields, scalar_fields

HEADER = "endpoint-load-metrics"
TRAILER = "endpoint-load-metrics-bin"
NAMED_PREFIX = "named_metrics."


class HeaderFormat(enum.StrEnum):
    """How the `endpoint-load-metrics` header spells a report."""

    TEXT = "TEXT"
    JSON = "JSON"
    BIN = "BIN"


def _number(value: float) -> str:
    return repr(float(value))  # shortest round-trip form; absl::SimpleAtod reads it back


def text_value(report: LoadReport) -> str:
    """`TEXT name=value,...` (Envoy's native HTTP form); refuses the maps it cannot carry."""
    for name in ("utilization", "request_cost"):
        if getattr(report, name):
            raise ValidationError(name, "has no TEXT form: send the report as JSON or BIN")
    pairs = [f"{name}={_number(v)}" for name in scalar_fields() if (v := getattr(report, name))]
    pairs += [
        f"{NAMED_PREFIX}{key}={_number(v)}" for key, v in sorted(report.named_metrics.items())
    ]
    # An empty list would leave "TEXT " whose space HTTP stacks strip: say one zero instead.
    return "TEXT " + (",".join(pairs) or "rps_fractional=0.0")


def json_value(report: LoadReport) -> str:
    """`JSON {...}`: the proto's JSON mapping on one line (unset fields left out)."""
    document: dict[str, object] = {
        name: value for name in scalar_fields() if (value := getattr(report, name))
    }
    document |= {
        name: dict(sorted(m.items())) for name in map_fields() if (m := getattr(report, name))
    }
    return "JSON " + json.dumps(document, separators=(",", ":"), allow_nan=False)


def bin_value(report: LoadReport) -> str:
    """`BIN <base64>` of the serialized report."""
    return "BIN " + base64.b64encode(report.serialize()).decode("ascii")


_ENCODERS = {
    HeaderFormat.TEXT: text_value,
    HeaderFormat.JSON: json_value,
    HeaderFormat.BIN: bin_value,
}


def header_value(report: LoadReport, form: HeaderFormat = HeaderFormat.TEXT) -> str:
    """The `endpoint-load-metrics` header's value for `report` in `form`."""
    return _ENCODERS[form](report)


def trailer(report: LoadReport) -> tuple[tuple[str, bytes]]:
    """The gRPC trailing metadata carrying `report` (`endpoint-load-metrics-bin`)."""
    return ((TRAILER, report.serialize()),)
