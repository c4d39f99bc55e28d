"""A transcription of Envoy's ORCA header parser (`source/common/orca/orca_parser.cc`), to
read back what xdscp.orca writes exactly as Envoy would.

`endpoint-load-metrics-bin` wins over `endpoint-load-metrics`; the latter's value starts with
`BIN `, `TEXT ` or `JSON `. TEXT: comma-separated (whitespace-trimmed) pairs split at the first
`=` (Envoy 1.40 also takes `:`), names `cpu_utilization`, `mem_utilization`,
`application_utilization`, `eps`, `rps_fractional` or `named_metrics.NAME`; a value must parse
as a double (absl::SimpleAtod) and be neither NaN nor infinite; a repeated name is an error.
JSON: the proto's JSON mapping, unknown fields refused. BIN: base64 of the serialized proto.
"""

from __future__ import annotations

import base64
import binascii
import math
import re

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from xds.data.orca.v3 import orca_load_report_pb2

OrcaLoadReport = orca_load_report_pb2.OrcaLoadReport
_FIELDS = ("cpu_utilization", "mem_utilization", "application_utilization", "eps", "rps_fractional")
_DOUBLE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.I)


class OrcaParseError(ValueError):
    """What Envoy answers with absl::InvalidArgumentError (or AlreadyExists)."""


def _double(name: str, text: str) -> float:
    if not text:
        raise OrcaParseError("metric values cannot be empty strings")
    if not _DOUBLE.fullmatch(text):
        raise OrcaParseError(f"unable to parse custom backend load metric value({name}): {text}")
    value = float(text)
    if math.isnan(value):
        raise OrcaParseError(f"custom backend load metric value({name}) cannot be NaN.")
    if math.isinf(value):
        raise OrcaParseError(f"custom backend load metric value({name}) cannot be infinity.")
    return value


def _text(value: str) -> OrcaLoadReport:
    report, seen = OrcaLoadReport(), set()
    for token in (part.strip() for part in value.split(",")):
        if not token:
            continue
        cut = re.search(r"[=:]", token)
        name, number = (token[: cut.start()], token[cut.end() :]) if cut else (token, "")
        name, number = name.strip(), number.strip()
        if not name:
            raise OrcaParseError("metric names cannot be empty strings")
        if name in seen:
            raise OrcaParseError(f"endpoint-load-metrics contains duplicate metric: {name}")
        parsed = _double(name, number)
        if name.startswith("named_metrics."):
            key = name.removeprefix("named_metrics.")
            if not key:
                raise OrcaParseError("named metric key is empty.")
            report.named_metrics[key] = parsed
        elif name in _FIELDS:
            setattr(report, name, parsed)
        else:
            raise OrcaParseError(f"unsupported metric name: {name}")
        seen.add(name)
    return report


def _binary(value: str) -> OrcaLoadReport:
    if not value:
        raise OrcaParseError("ORCA binary header value is empty")
    try:
        decoded = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise OrcaParseError(f"unable to decode ORCA binary header value: {value}") from None
    report = OrcaLoadReport()
    try:
        report.ParseFromString(decoded)
    except DecodeError:
        raise OrcaParseError(f"unable to parse binaryheader to OrcaLoadReport: {value}") from None
    return report


def parse_headers(headers: dict[str, str]) -> OrcaLoadReport:
    """The report Envoy reads from a response's headers (lower-case names)."""
    if "endpoint-load-metrics-bin" in headers:
        return _binary(headers["endpoint-load-metrics-bin"])
    value = headers.get("endpoint-load-metrics")
    if value is None:
        raise OrcaParseError("no ORCA data sent from the backend")
    if value.startswith("BIN "):
        return _binary(value.removeprefix("BIN "))
    if value.startswith("TEXT "):
        return _text(value.removeprefix("TEXT "))
    if value.startswith("JSON "):
        try:
            return json_format.Parse(value.removeprefix("JSON "), OrcaLoadReport())
        except json_format.ParseError as exc:
            raise OrcaParseError(f"invalid JSON: {exc}") from None
    raise OrcaParseError(f"unsupported ORCA header format: {value[:5].split(' ')[0]}")
