"""Where the repository is, for tests that read its files or run its scripts."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "translate"  # the expected translations
