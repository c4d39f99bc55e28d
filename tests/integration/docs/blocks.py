"""The ```sh blocks of README.md and docs/*.md, as written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.harness.paths import ROOT

DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
_FENCE = re.compile(r"^```(\S*)\s*$")
# Shell commands are written ```sh; these would escape the test that runs them.
FORBIDDEN_LANGUAGES = frozenset({"bash", "shell", "console", "zsh", "shell-session"})


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: its file, the line of its opening fence, the section (the last
    `##` heading above it), its language and its text (without the fences)."""

    path: Path
    line: int
    section: str
    language: str
    text: str

    @property
    def where(self) -> str:
        """`README.md:48`."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    lines = path.read_text().splitlines()
    blocks, section, i = [], "", 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:].strip()
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if _FENCE.match(lines[j]))
        text = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(Block(path, i + 1, section, opening.group(1), text))
        i = end + 1
    return blocks


def sh_blocks() -> list[Block]:
    """Every ```sh block of the README and docs/, in order."""
    return [b for path in DOCUMENTS for b in fenced_blocks(path) if b.language == "sh"]


def readme_section(section: str) -> list[Block]:
    """The README's ```sh blocks under the `## section` heading, in order."""
    return [b for b in sh_blocks() if b.path.name == "README.md" and b.section == section]
