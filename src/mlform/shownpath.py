"""Paths as a user would type them: from the workspace's folder when they are inside it."""

from __future__ import annotations

from pathlib import Path


def shown(path: Path, root: Path) -> str:
    """`path` relative to `root` (the workspace) when it is inside it, else as it is."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
