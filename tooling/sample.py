"""The project's own sample text (`tooling/sample_text/<lang>.txt`) and the standard library's code."""

import sys
import sysconfig
from pathlib import Path

SAMPLE_DIR = Path(__file__).parent / "sample_text"


def sample_path(language: str) -> Path:
    return SAMPLE_DIR / f"{language}.txt"


def sample_sentences(language: str) -> list[str]:
    return [line for line in sample_path(language).read_text(encoding="utf-8").splitlines() if line.strip()]


def stdlib_files() -> list[Path]:
    """The running Python's standard-library modules (top level, sorted): real code for the code recipe."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.glob("*.py") if p.is_file())


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))
