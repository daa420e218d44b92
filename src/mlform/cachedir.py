"""Where mlform keeps what it builds for this user, shared by all their workspaces."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$MLFORM_CACHE_DIR`, else `$XDG_CACHE_HOME/mlform`, else `~/.cache/mlform`."""
    explicit = os.environ.get("MLFORM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlform"
