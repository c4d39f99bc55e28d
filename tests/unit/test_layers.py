"""The packages of `xdscp/` are layers: each imports only the ones listed before it.

Read from the source (every `import` and `from ... import` naming `xdscp.<package>`), so
an import that runs backwards fails here, wherever it hides (a function body included).
"""

from __future__ import annotations

import ast
from pathlib import Path

import xdscp

ROOT = Path(xdscp.__file__).parent
LAYERS = (
    "errors", "logs", "signals", "keepalive", "retry",
    "model",
    "etcd", "dns",
    "registry",
    "sources", "health", "cache", "translate", "server",
    "balancer", "admin", "config", "clients", "procs", "plane",
    "testing", "demo", "cli", "__main__",
)  # fmt: skip
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def _layer(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _imported(tree: ast.AST) -> set[str]:
    """The `xdscp` packages a module imports (top-level names after `xdscp.`)."""
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
    return {m.split(".")[1] for m in modules if m.startswith("xdscp.")}


def _modules() -> list[Path]:
    return [p for p in sorted(ROOT.rglob("*.py")) if "_proto" not in p.parts]


def test_every_package_has_a_layer() -> None:
    layers = {_layer(path) for path in _modules()} - {"__init__"}
    assert layers == set(LAYERS), "a package of xdscp/ is missing from LAYERS (or gone)"


def test_no_import_runs_back_up() -> None:
    backwards = [
        f"{path.relative_to(ROOT)} imports xdscp.{target}"
        for path in _modules()
        if _layer(path) != "__init__"
        for target in _imported(ast.parse(path.read_text(), str(path)))
        if target != _layer(path) and RANK[target] > RANK[_layer(path)]
    ]
    assert backwards == []


def test_the_check_sees_a_backward_import() -> None:
    tree = ast.parse("from xdscp.sources import Source\nimport xdscp.cli.serve\n")
    assert _imported(tree) == {"sources", "cli"}
    assert RANK["sources"] > RANK["registry"]
