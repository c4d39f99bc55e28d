"""The README and docs/ link only to files and headings that exist (the reference moved from
the README to docs/: a link left pointing at the old place fails here)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.harness.paths import ROOT

DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
_LINK = re.compile(r"\]\(([^)\s]*)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    out = set()
    for line in path.read_text().splitlines():
        if line.startswith("#") and " " in line:
            title = line.split(" ", 1)[1].strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_relative_link_resolves() -> None:
    """Each relative link names an existing file, and each #anchor one of its headings."""
    broken = []
    for document in DOCUMENTS:
        for target in _LINK.findall(document.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            path = (document.parent / file).resolve() if file else document
            if not path.exists() or (anchor and anchor not in _anchors(path)):
                broken.append(f"{document.relative_to(ROOT)}: {target}")
    assert broken == []
