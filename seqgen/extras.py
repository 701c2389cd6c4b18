"""Optional packages (the extras in pyproject.toml): how to tell a user to install one."""

from __future__ import annotations

from pathlib import Path


def install_hint(extra: str) -> str:
    """How to add an extra to this seqgen: from its source checkout when it runs from one
    (`seqgen[plot]` would fetch a released seqgen instead of adding to the one being run)."""
    root = Path(__file__).resolve().parents[1]
    project = root / "pyproject.toml"
    if project.is_file() and 'name = "seqgen"' in project.read_text(encoding="utf-8", errors="replace"):
        return f"pip install -e '{root}[{extra}]'"
    return f"pip install 'seqgen[{extra}]'"
