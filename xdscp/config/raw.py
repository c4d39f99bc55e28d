"""`serve`'s configuration values: the located YAML of `xdscp.sources.located` with what
the configuration adds, files relative to it and `XDSCP_A__B` variables laid over it
(`apply_environment`). `RawConfig`'s typed getters raise `ConfigFieldError` naming the origin
(`FILE:LINE` or the variable) and the field's path. What the keys mean is `xdscp.config`'s
business; this module knows only shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from xdscp.errors import ConfigFieldError
from xdscp.sources.located import FieldPath, Located, field_name, parse_field, present
from xdscp.sources.located import parse_yaml as parse_located

ENV_PREFIX = "XDSCP_"
STR, INT, LIST, YAML = "str", "int", "list", "yaml"
__all__ = ["FieldPath", "RawConfig", "apply_environment", "field_name", "parse_field", "parse_yaml"]


class RawConfig(Located):
    """Located values that may also come from the environment (`set`), and files."""

    def __init__(self, data: dict[str, Any], name: str, base: Path | None = None) -> None:
        super().__init__(data, name, base)
        self.from_env: set[FieldPath] = set()

    @classmethod
    def of(cls, located: Located) -> RawConfig:
        """The configuration read from `located`'s values and origins."""
        raw = cls(located.data, located.name, located.base)
        raw.origins = located.origins
        return raw

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
            if isinstance(node, list) and not present(node, key):
                raise ConfigFieldError(origin, field_name(tuple(actual)), "no such list item")
            if index == len(path) - 1:
                if value is None and isinstance(node, dict):
                    node.pop(key, None)  # an empty variable: back to the default
                else:
                    node[key] = value
                break
            if not present(node, key) or not isinstance(node[key], dict | list):
                node[key] = {}
            node = node[key]
        where = tuple(actual)
        for known in [p for p in self.origins if p[: len(where)] == where]:
            del self.origins[known]
        self.origins[where] = origin
        self.from_env.add(where)


def _existing_key(node: Any, part: str | int) -> str | int:
    """Env names are upper case: match an existing key case-insensitively; list indexes."""
    if isinstance(node, list):
        return int(part) if str(part).isdigit() else str(part)
    matches = [k for k in node if str(k).lower() == str(part).lower()]
    return matches[0] if matches else part


def parse_yaml(text: str, name: str, base: Path | None = None) -> RawConfig:
    """The configuration file's text, located (`xdscp.sources.located.parse_yaml`)."""
    return RawConfig.of(parse_located(text, name, base))


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
