"""Registry input is bytes until proven otherwise: a key is checked for length, strict UTF-8
and control characters before it is split; a value for size, strict UTF-8 and JSON nesting
depth (scanned on the bytes, so `json.loads` never recurses on hostile input) before it is
parsed, and its strings must be Unicode text. The formats themselves are `schema.py`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from xdscp.errors import ValidationError

MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_BYTES = 1024
MAX_JSON_DEPTH = 64

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def display_key(raw: bytes) -> str:
    """A key as logs show it: UTF-8, with undecodable bytes as `\\xNN` escapes."""
    return raw.decode("utf-8", errors="backslashreplace")


def _decode(raw: bytes, what: str, size_field: str, max_bytes: int) -> str:
    """`raw` as text, once it is proven at most `max_bytes` and strict UTF-8."""
    if len(raw) > max_bytes:
        raise ValidationError(size_field, f"is {len(raw)} bytes, more than {max_bytes}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"{what} is not UTF-8: {exc.reason} at byte {exc.start}"
        raise ValidationError("utf8", message) from None


def decode_key(raw: bytes) -> str:
    """The key as text, once it is proven short, strict UTF-8 and free of control characters."""
    key = _decode(raw, "key", "key_length", MAX_KEY_BYTES)
    if _CONTROL.search(key):
        raise ValidationError("key", "contains control characters")
    return key


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects deeper than `limit` (scanned as bytes,
    strings skipped), so json.loads never recurses on hostile input."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _JSON_STRING.sub(b'""', raw).translate(None, _NOT_BRACKET):
        depth += 1 if byte in b"[{" else -1
        if depth > limit:
            return True
    return False


def _check_text(value: object) -> None:
    """Reject strings that are not Unicode text (a `\\ud800` escape decodes to a lone
    surrogate, which cannot be encoded into a protobuf string)."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise ValidationError("json", "holds an unpaired surrogate escape, not Unicode text")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def load_object(raw: bytes, max_bytes: int) -> dict[str, Any]:
    text = _decode(raw, "value", "value", max_bytes)
    if json_depth_exceeds(raw):
        raise ValidationError("depth", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValidationError("depth", f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise ValidationError("json", f"is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(raw):
        _check_text(value)
    if not isinstance(value, dict):
        raise ValidationError("type", f"must be a JSON object, got {type(value).__name__}")
    return value
