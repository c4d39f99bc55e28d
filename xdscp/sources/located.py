"""YAML values that remember where they came from: `FILE:LINE` of every key and list item.

`parse_yaml` walks PyYAML's node tree (`compose`) instead of `safe_load`, so every key keeps
its line; `Located`'s typed getters raise `ConfigFieldError` naming that origin and the
field's path. Any input (bytes decoded as text) gives either values or a `ConfigFieldError`:
malformed YAML, tags PyYAML cannot build, nesting too deep for the parser and alias bombs
(`MAX_REPEATS`) included. What the keys mean is the callers' business (the
services document, `serve`'s configuration); this module knows only shapes.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from xdscp.errors import ConfigError, ConfigFieldError, ValidationError

FieldPath = tuple[str | int, ...]
MAX_REPEATS = 100_000
"""Values a document may repeat through aliases (a node read again counts each time): the
bound that stops an alias bomb; a document without aliases has no limit but its size."""
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


def unknown_field(key: str, allowed: Collection[str]) -> str:
    """`unknown field 'wieght', did you mean 'weight'?` (or the allowed names)."""
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f", did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
    return f"unknown field {key!r}{hint}"


def kind_of(value: object) -> str:
    """`a mapping`, `a list`, `a string`, or the value itself, for error messages."""
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(value)) or repr(value)


def present(node: Any, key: str | int) -> bool:
    """True when `key` is in the mapping `node`, or an index of the list `node`."""
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)


class Located:
    """Plain values (from a file, or set later) and where each one came from."""

    def __init__(self, data: dict[str, Any], name: str, base: Path | None = None) -> None:
        self.data = data
        self.name = name
        self.base = base
        self.origins: dict[FieldPath, str] = {}

    def origin(self, path: FieldPath) -> str:
        """`FILE:LINE` (or what set it) of the longest prefix of `path` that has one."""
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
            if not present(node, part):
                return False
            node = node[part]
        return True

    def get(self, path: FieldPath, default: Any = None) -> Any:
        """The value at `path`; `default` when absent or null."""
        node: Any = self.data
        for part in path:
            if not present(node, part):
                return default
            node = node[part]
        return default if node is None else node

    def mapping(self, path: FieldPath, allowed: Collection[str] | None = None) -> dict[str, Any]:
        """The mapping at `path` ({} when absent); keys outside `allowed` are errors, at the
        key's own line: `FILE:LINE: PATH: unknown field 'KEY', did you mean 'NAME'?`."""
        value = self.get(path, {})
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping, got {kind_of(value)}")
        for key in value:
            if allowed is not None and key not in allowed:
                where = self.origin((*path, key))
                raise ConfigFieldError(where, field_name(path), unknown_field(key, allowed))
        return value

    def sequence(self, path: FieldPath) -> list[Any]:
        """The list at `path` ([] when absent)."""
        value = self.get(path, [])
        if not isinstance(value, list):
            raise self.error(path, f"must be a list, got {kind_of(value)}")
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


# --- YAML with line numbers --------------------------------------------------------------


def parse_yaml(text: str, name: str, base: Path | None = None) -> Located:
    """Compose `text` (PyYAML's node API) into plain values with the line of every key.

    The document must be a mapping (or empty). Every failure is a `ConfigFieldError` at
    `name:LINE`."""
    located = Located({}, name, base)
    builder: _Builder | None = None
    try:
        builder = _Builder(located, text)  # the reader checks the characters here
        node = builder.loader.get_single_node()
        data = {} if node is None else builder.value(node, (), frozenset())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise ConfigFieldError(where, "", f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:  # the reader: a character YAML does not allow
        where = name
        if isinstance(exc, yaml.reader.ReaderError):
            where = f"{name}:{text.count(chr(10), 0, exc.position) + 1}"
        raise ConfigFieldError(where, "", f"invalid YAML: {_reader_problem(exc)}") from None
    except RecursionError:
        raise ConfigFieldError(name, "", "invalid YAML: nested too deeply") from None
    finally:
        if builder is not None:
            builder.loader.dispose()
    if not isinstance(data, dict):
        raise ConfigFieldError(f"{name}:1", "", "must be a mapping, got " + kind_of(data))
    located.data = data
    return located


def _reader_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        return f"character {chr(exc.character)!r} (position {exc.position}) is not allowed"
    return type(exc).__name__


class _Builder:
    """Plain values from composed nodes, recording each key's line, within `MAX_REPEATS`."""

    def __init__(self, located: Located, text: str) -> None:
        self.located = located
        self.loader = yaml.SafeLoader(text)
        self.budget = MAX_REPEATS
        self.built: set[int] = set()
        self.explicit: dict[int, set[int]] = {}  # mapping node -> its own (not merged) keys

    def line(self, node: yaml.Node) -> str:
        return f"{self.located.name}:{node.start_mark.line + 1}"

    def value(self, node: yaml.Node, path: FieldPath, seen: frozenset[int]) -> Any:
        if id(node) in self.built:  # reached again through an alias
            self.budget -= 1
            if self.budget < 0:
                raise self.located.error(path, "aliases repeat too many values")
        self.built.add(id(node))
        if id(node) in seen:
            raise self.located.error(path, "recursive alias")
        seen = seen | {id(node)}
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, seen)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.located.origins[(*path, index)] = self.line(item)
                items.append(self.value(item, (*path, index), seen))
            return items
        return self.scalar(node, path)

    def mapping(self, node: yaml.MappingNode, path: FieldPath, seen: frozenset[int]) -> Any:
        if id(node) not in self.explicit:  # first visit: before flattening changes the node
            keys = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
            self.explicit[id(node)] = keys
        explicit = self.explicit[id(node)]
        self.loader.flatten_mapping(node)  # merged (`<<: *x`) pairs first: explicit ones win
        out: dict[str, Any] = {}
        written: set[str] = set()
        for key_node, value_node in node.value:
            key = self.scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise ConfigFieldError(self.line(key_node), field_name(path), "keys are names")
            child = (*path, str(key))
            if str(key) in written and id(key_node) in explicit:
                raise ConfigFieldError(self.line(key_node), field_name(child), "duplicate key")
            if id(key_node) in explicit:
                written.add(str(key))
            self.located.origins[child] = self.line(key_node)
            out[str(key)] = self.value(value_node, child, seen)
        return out

    def scalar(self, node: yaml.Node, path: FieldPath) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError) as exc:  # `2001-02-30`, `!!int x`
            raise ConfigFieldError(self.line(node), field_name(path), f"bad value: {exc}") from None
