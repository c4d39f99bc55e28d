"""The suite's own rules (tests/README.md), read from the source so they cannot rot: shared
code is imported from tests/harness or tests/fixtures, never from a conftest or a test
module; conftests declare fixtures; unit tests start no long-running process."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.paths import ROOT

TESTS = ROOT / "tests"
SHARED = ("tests.harness", "tests.fixtures")  # importable from anywhere in the suite
TIERS = ("unit", "integration", "e2e", "quickstart", "interop")
# What a unit test may not import: these start (or drive) processes, or open ports.
PROCESS_MODULES = (
    "tests.fixtures.compose", "tests.fixtures.dns", "tests.fixtures.dnsmasq",
    "tests.fixtures.etcd", "tests.fixtures.etcd_backends", "tests.fixtures.envoy",
    "tests.fixtures.go", "tests.fixtures.plane", "tests.fixtures.running",
    "tests.harness.cli", "tests.harness.expect", "tests.harness.grpc_client",
    "tests.harness.grpc_clients", "tests.harness.interop", "tests.harness.parity",
    "tests.harness.plane", "tests.harness.serve", "tests.harness.stack", "tests.harness.tls",
    "tests.harness.traffic",
)  # fmt: skip


def _modules() -> Iterator[Path]:
    return (p for p in sorted(TESTS.rglob("*.py")) if ".venv" not in p.parts)


def _name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `path`, at any depth (relative
    imports resolved against the module's package)."""
    package = _name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base]).strip(".")
            yield node.lineno, base
            # `from tests.x import test_y` imports the module tests.x.test_y
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names)


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def _is_test_module(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_")


def test_no_module_imports_a_conftest_or_a_test_module() -> None:
    """A conftest or a `test_*` module is never a library: what two modules share lives in
    tests/harness (or tests/fixtures, for fixtures), where an import names it."""
    found = [
        f"{_where(path, line)} imports {module}"
        for path in _modules()
        for line, module in _imports(path)
        if module.startswith("tests.") and _is_test_module(module)
    ]
    assert found == []


def test_shared_code_crosses_folders_only_through_the_harness() -> None:
    """A helper module beside the tests of one folder serves that folder only; anything
    another folder needs is in tests/harness or tests/fixtures."""
    found = []
    for path in _modules():
        package = _name(path).rsplit(".", 1)[0]
        for line, module in _imports(path):
            own = module.startswith((f"{package}.", *(f"{s}." for s in SHARED)))
            if module.startswith("tests.") and not own and module not in SHARED:
                found.append(f"{_where(path, line)} imports {module}")
    assert found == []


def _decorators(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names = set()
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        names.add(ast.unparse(target))
    return names


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return "pytest.fixture" in _decorators(node)


@pytest.mark.parametrize(
    "conftest", sorted(TESTS.rglob("conftest.py")), ids=lambda p: str(p.relative_to(TESTS))
)
def test_a_conftest_only_declares_fixtures_and_hooks(conftest: Path) -> None:
    """No class and no public function in a conftest but fixtures and `pytest_*` hooks
    (private helpers of its fixtures are allowed: nothing imports a conftest)."""
    tree = ast.parse(conftest.read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found.append(f"class {node.name}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not (
            _is_fixture(node) or node.name.startswith(("_", "pytest_"))
        ):
            found.append(f"def {node.name}")
    assert found == []


def _fixture_names(paths: Iterator[Path]) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_fixture(node):
                names.add(node.name)
    return names


def _process_fixtures() -> set[str]:
    """Every fixture a unit test could reach that a tier running processes declares: those
    of tests/fixtures and of the conftests outside tests/unit (a test module's own fixtures
    serve that module only)."""
    conftests = (p for p in TESTS.rglob("conftest.py") if p.parent != TESTS)
    shared = (p for p in (TESTS / "fixtures").glob("*.py"))
    outside = (p for p in conftests if "unit" not in p.relative_to(TESTS).parts[:1])
    unit = (TESTS / "unit").rglob("conftest.py")
    return _fixture_names(iter([*shared, *outside])) - _fixture_names(unit)


def test_unit_tests_start_no_process() -> None:
    """Unit tests start no long-running process (etcd, Envoy, dnsmasq, Go or gRPC clients,
    a serving xdscp): they import none of the process modules of tests/harness or
    tests/fixtures and request none of their fixtures (a fixture of the same name that a
    unit module declares itself, like an in-process `plane`, is its own)."""
    banned = _process_fixtures()
    assert {"etcd_server", "envoy", "dnsmasq_server", "go_client_binary"} <= banned  # can fail
    found = []
    for path in (TESTS / "unit").rglob("*.py"):
        tree = ast.parse(path.read_text())
        reachable = banned - _fixture_names(iter([path]))
        for line, module in _imports(path):
            if module.startswith(PROCESS_MODULES):
                found.append(f"{_where(path, line)} imports {module}")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                asked = {a.arg for a in node.args.args} & reachable
                if node.name.startswith("test_") and asked:
                    found.append(f"{_where(path, node.lineno)} requests {sorted(asked)}")
    assert found == []


def test_every_process_module_named_exists() -> None:
    """The list above names real modules (a renamed one would silently pass the check)."""
    missing = [m for m in PROCESS_MODULES if not (ROOT / (m.replace(".", "/") + ".py")).exists()]
    assert missing == []


def test_tests_live_in_test_modules_and_tiers_are_documented() -> None:
    """Tests are `test_*` functions in `test_*.py` modules (pytest collects no other), under a
    tier that tests/README.md describes."""
    readme = (TESTS / "README.md").read_text()
    found = [f"tests/{tier} is not described" for tier in TIERS if f"tests/{tier}" not in readme]
    for path in _modules():
        if path.name.startswith("test_") or path.name == "conftest.py":
            continue
        tree = ast.parse(path.read_text())
        found += [
            f"{_where(path, node.lineno)}: test {node.name} outside a test module"
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name.startswith("test_")
        ]
    top = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert top <= {*TIERS, "fixtures", "harness", "golden"}, top
    assert found == []
