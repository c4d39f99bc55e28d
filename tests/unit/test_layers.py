"""xdscp's packages form one pipeline: each imports only the packages before it in `LAYERS`
(the order ARCHITECTURE.md draws). An import that runs back up, or a new package not placed
in the order, fails here."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "xdscp"
LAYERS = (
    "errors", "logs", "keepalive", "signals",     # every stage may use these
    "retry",                                      # backoff for whatever retries
    "model",                                      # the data every stage speaks
    "orca",                                       # backends reporting their load (ORCA)
    "etcd", "dns",                                # the backends' own clients
    "registry",                                   # the etcd registry's schema; registering
    "sources", "health", "load",                  # watch, check, weigh: ServiceSets
    "cache", "translate", "server",               # resources, snapshots, xDS streams
    "balancer", "admin",                          # beside the pipeline: predict, show
    "config", "plane",                            # compose the pipeline
    "clients", "procs", "demo", "testing",        # bootstraps, child processes, tools
    "cli", "__main__",                            # the top
)  # fmt: skip


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "xdscp" and len(parts) > 1 else None


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level xdscp package) of every absolute import of xdscp in a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            top = _top(name)
            if top is not None:
                yield node.lineno, top


def _layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_every_package_has_a_place() -> None:
    here = {_layer_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert here - set(LAYERS) == set(), "place the new package in LAYERS and ARCHITECTURE.md"


def test_no_import_runs_back_up() -> None:
    order = {name: i for i, name in enumerate(LAYERS)}
    backwards = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer_of(path)
        if layer == "__init__":
            continue
        for line, top in _imports(path):
            if top != layer and order.get(top, len(LAYERS)) >= order[layer]:
                backwards.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {top}")
    assert backwards == []


def test_the_check_sees_a_backwards_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from xdscp.plane import ControlPlane\nimport xdscp.model.service\n")
    assert list(_imports(module)) == [(1, "plane"), (2, "model")]
