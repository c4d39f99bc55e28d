"""Configuration values that remember where they came from: a YAML line or a variable.

`parse_yaml` walks PyYAML's node tree (`compose`) instead of `safe_load`, so every key keeps
its `FILE:LINE`; `apply_environment` lays `XDSCP_A__B` variables over it. `RawConfig`'s typed
getters raise `ConfigFieldError` naming that origin and the field's path. What the keys mean
is `xdscp.config`'s business; this module knows only shapes.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from xdscp.errors import ConfigError, ConfigFieldError, ValidationError

FieldPath = tuple[str | int, ...]
ENV_PREFIX = "XDSCP_"
STR, INT, LIST, YAML = "str", "int", "list", "yaml"
XdscpErrorLike = ValidationError | ConfigError


def field_name(path: FieldPath) -> str:
    """`("sources", "static", "services", "web", "endpoints", 1)` -> `sources....endpoints[1]`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def parse_field(text: str) -> FieldPath:
    """The inverse of `field_name` (for loaders that report dotted fields)."""
    parts: list[str | int] = []
    for piece in text.split("."):
        name, *indices = piece.split("[")
        parts.extend([name] if name else [])
        parts.extend(int(i.rstrip("]")) for i in indices if i.rstrip("]").isdigit())
    return tuple(parts)


class RawConfig:
    """Plain values from the file and the environment, and where each one came from."""

    def __init__(self, data: dict[str, Any], name: str, base: Path | None = None) -> None:
        self.data = data
        self.name = name
        self.base = base
        self.origins: dict[FieldPath, str] = {}
        self.from_env: set[FieldPath] = set()

    def origin(self, path: FieldPath) -> str:
        """`FILE:LINE` or the variable of the longest prefix of `path` that has one."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.origins:
                return self.origins[path[:end]]
        return self.name

    def error(self, path: FieldPath, message: str) -> ConfigFieldError:
        """An error about the value at `path`, located."""
        return ConfigFieldError(self.origin(path), field_name(path), message)

    def wrap(
        self, path: FieldPath, exc: XdscpErrorLike, renames: Mapping[str, FieldPath] | None = None
    ) -> ConfigFieldError:
        """A model or loader error about the object at `path`, located at its field."""
        if isinstance(exc, ValidationError):
            sub = (renames or {}).get(exc.field, parse_field(exc.field))
            return self.error((*path, *sub), exc.message)
        return self.error(path, str(exc))

    def has(self, path: FieldPath) -> bool:
        """True when the key is present (even with a null value)."""
        node: Any = self.data
        for part in path:
            if not _present(node, part):
                return False
            node = node[part]
        return True

    def get(self, path: FieldPath, default: Any = None) -> Any:
        """The value at `path`; `default` when absent or null."""
        node: Any = self.data
        for part in path:
            if not _present(node, part):
                return default
            node = node[part]
        return default if node is None else node

    def mapping(self, path: FieldPath, allowed: Collection[str] | None = None) -> dict[str, Any]:
        """The mapping at `path` ({} when absent); keys outside `allowed` are errors."""
        value = self.get(path, {})
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping, got {_kind(value)}")
        for key in value:
            if allowed is not None and key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
                raise self.error((*path, key), f"unknown key; {hint}")
        return value

    def sequence(self, path: FieldPath) -> list[Any]:
        """The list at `path` ([] when absent)."""
        value = self.get(path, [])
        if not isinstance(value, list):
            raise self.error(path, f"must be a list, got {_kind(value)}")
        return value

    def string(self, path: FieldPath, default: str | None = None) -> str | None:
        """The string at `path`, or `default`."""
        value = self.get(path)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(path, f"must be a string, got {value!r}")
        return value

    def strings(self, path: FieldPath) -> tuple[str, ...] | None:
        """The list of strings at `path`; None when absent."""
        if self.get(path) is None:
            return None
        return tuple(self.string((*path, i)) or "" for i in range(len(self.sequence(path))))

    def file(self, path: FieldPath) -> str | None:
        """A path to an existing file; relative to the configuration file when set in it."""
        value = self.string(path)
        if value is None:
            return None
        from_file = not any(path[:end] in self.from_env for end in range(len(path) + 1))
        resolved = Path(value) if self.base is None or not from_file else self.base / value
        if not resolved.is_file():
            raise self.error(path, f"no such file: {resolved}")
        return str(resolved)

    def set(self, path: FieldPath, value: Any, origin: str) -> None:
        """Replace the value at `path` (creating sections on the way), remembering `origin`."""
        node: Any = self.data
        actual: list[str | int] = []
        for index, part in enumerate(path):
            key = _existing_key(node, part)
            actual.append(key)
            if isinstance(node, list) and not _present(node, key):
                raise ConfigFieldError(origin, field_name(tuple(actual)), "no such list item")
            if index == len(path) - 1:
                if value is None and isinstance(node, dict):
                    node.pop(key, None)  # an empty variable: back to the default
                else:
                    node[key] = value
                break
            if not _present(node, key) or not isinstance(node[key], dict | list):
                node[key] = {}
            node = node[key]
        where = tuple(actual)
        for known in [p for p in self.origins if p[: len(where)] == where]:
            del self.origins[known]
        self.origins[where] = origin
        self.from_env.add(where)


def _kind(value: object) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value)) or repr(value)


def _present(node: Any, key: str | int) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


def _existing_key(node: Any, part: str | int) -> str | int:
    """Env names are upper case: match an existing key case-insensitively; list indexes."""
    if isinstance(node, list):
        return int(part) if str(part).isdigit() else str(part)
    matches = [k for k in node if str(k).lower() == str(part).lower()]
    return matches[0] if matches else part


# --- YAML with line numbers --------------------------------------------------------------


def parse_yaml(text: str, name: str, base: Path | None = None) -> RawConfig:
    """Compose `text` (PyYAML's node API) into plain values with the line of every key."""
    raw = RawConfig({}, name, base)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = {} if node is None else _value(loader, raw, node, (), frozenset())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise ConfigFieldError(where, "", f"invalid YAML: {exc.problem or exc.context}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigFieldError(f"{name}:1", "", "must be a mapping of sections, got " + _kind(data))
    raw.data = data
    return raw


def _line(raw: RawConfig, node: yaml.Node) -> str:
    return f"{raw.name}:{node.start_mark.line + 1}"


def _value(
    loader: yaml.SafeLoader, raw: RawConfig, node: yaml.Node, path: FieldPath, seen: frozenset[int]
) -> Any:
    if id(node) in seen:
        raise ConfigFieldError(raw.origin(path), field_name(path), "recursive alias")
    seen = seen | {id(node)}
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise ConfigFieldError(_line(raw, key_node), field_name(path), "keys are names")
            child = (*path, str(key))
            if str(key) in out:
                raise ConfigFieldError(_line(raw, key_node), field_name(child), "duplicate key")
            raw.origins[child] = _line(raw, key_node)
            out[str(key)] = _value(loader, raw, value_node, child, seen)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            raw.origins[(*path, index)] = _line(raw, item)
            items.append(_value(loader, raw, item, (*path, index), seen))
        return items
    return loader.construct_object(node)


# --- environment overrides ---------------------------------------------------------------


def apply_environment(
    raw: RawConfig, environ: Mapping[str, str], schema: Mapping[str, Any]
) -> None:
    """Apply every `XDSCP_A__B...` variable (shallow ones first, then by name).

    `schema` gives each key's kind: a nested mapping for a section, else `STR`, `INT`, `LIST`
    (split on commas) or `YAML` (the value is parsed as YAML; also for unknown keys, which the
    loader then rejects naming the variable).
    """
    names = [n for n in environ if n.startswith(ENV_PREFIX) and "__" in n]
    for name in sorted(names, key=lambda n: (n.count("__"), n)):
        path: FieldPath = tuple(p.lower() for p in name.removeprefix(ENV_PREFIX).split("__"))
        if not all(path):
            raise ConfigFieldError(name, "", "empty key between '__'")
        raw.set(path, _env_value(schema, name, path, environ[name]), name)


def _env_value(schema: Mapping[str, Any], name: str, path: FieldPath, text: str) -> Any:
    if not text.strip():
        return None
    kind: Any = schema
    for part in path:
        kind = kind.get(part, YAML) if isinstance(kind, dict) else YAML
    if kind == STR:
        return text
    if kind == INT:
        return int(text) if text.strip().isdigit() else text
    if kind == LIST:
        return [item.strip() for item in text.split(",") if item.strip()]
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFieldError(name, field_name(path), f"not valid YAML: {problem}") from None
