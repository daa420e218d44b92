"""mlform: machine learning as code, reconciled by plan and apply."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlform.tracking.sdk import Run, get_run

__all__ = ["Run", "get_run"]


def __getattr__(name: str) -> object:
    # Imported on first use, so `import mlform` in a training script stays cheap.
    if name in __all__:
        from mlform.tracking import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'mlform' has no attribute {name!r}")
