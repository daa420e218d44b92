"""mlform: machine learning as code, reconciled by plan and apply.

`mlform.Workspace(path)` is the library (validate, plan, apply, runs); `mlform.get_run()`
is the SDK training scripts use. Both are imported on first use, so `import mlform` in
a training script stays cheap and needs none of mlform's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlform.tracking.sdk import Run, get_run
    from mlform.workspace import Workspace

__all__ = ["Run", "Workspace", "get_run"]


def __getattr__(name: str) -> object:
    if name == "Workspace":
        from mlform.workspace import Workspace

        return Workspace
    if name in __all__:
        from mlform.tracking import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'mlform' has no attribute {name!r}")
