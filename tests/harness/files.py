"""Files tests write: config files, and edits a poller is sure to see."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

# A config whose one static service `web` has a second endpoint of weight `WEB_CONFIG % w`.
WEB_CONFIG = """\
sources:
  static:
    services:
      web:
        endpoints:
          - {address: 10.0.0.1, port: 80}
          - address: 10.0.0.2
            port: 80
            weight: %s
"""


def write_config(directory: Path, text: str, name: str = "xdscp.yaml") -> Path:
    """`text`, dedented, written to `directory/name`; its path."""
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def rewrite(path: Path, text: str) -> None:
    """Write `text` to `path` with a modification time a second after the previous one, so
    a poll of the mtime sees the change however coarse the file system's clock."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    later = before + 1_000_000_000
    os.utime(path, ns=(later, later))
