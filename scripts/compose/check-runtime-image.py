"""Run inside an image (`docker run -i --entrypoint python3 IMAGE - <this file`): exit 0 when it
is a runtime image, that is xdscp, Envoy and etcd are there, it runs as a non-root user and
no development tool is installed; otherwise exit 1 with one line per problem.

scripts/e2e-compose.sh runs it on the Dockerfile's runtime target (it must pass) and on the
test target (it must fail: the check can tell them apart). Standard library only.
"""

import importlib.metadata
import importlib.util
import os
import shutil
import sys

DEV_MODULES = ("pytest", "_pytest", "mypy", "playwright", "hypothesis", "grpc_tools", "ruff")
DEV_DISTRIBUTIONS = ("pytest", "mypy", "playwright", "hypothesis", "grpcio-tools", "ruff")
RUNTIME_COMMANDS = ("xdscp", "envoy", "etcd", "etcdctl")


def problems() -> list[str]:
    """What makes this image not a runtime image."""
    found = [f"module {m} is importable" for m in DEV_MODULES if importlib.util.find_spec(m)]
    for name in DEV_DISTRIBUTIONS:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(f"distribution {name} {version} is installed")
    found += [f"command {c} is not on PATH" for c in RUNTIME_COMMANDS if not shutil.which(c)]
    if importlib.util.find_spec("xdscp.cli") is None:
        found.append("xdscp is not installed")
    if os.getuid() == 0:
        found.append("runs as root")
    return found


def main() -> int:
    """Print the verdict; 0 for a runtime image."""
    found = problems()
    for problem in found:
        print(f"not a runtime image: {problem}")
    if not found:
        print(f"runtime image: uid {os.getuid()}, {', '.join(RUNTIME_COMMANDS)} present")
    return 1 if found else 0


sys.exit(main())
