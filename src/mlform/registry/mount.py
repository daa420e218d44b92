"""A model version's files laid out for one instance as Azure ML mounts a model.

AZUREML_MODEL_DIR holds what was registered, by its name: a folder registered from
`../model-1/model/` is `model/` inside it, so Azure's `os.path.join(
os.getenv("AZUREML_MODEL_DIR"), "model/sklearn_regression_model.pkl")` finds its file;
a single registered file sits in it directly (Azure ML, "Specify model to deploy for use
in online endpoint"). MLFORM_MODEL_DIR is the files' own folder: the registered folder,
or AZUREML_MODEL_DIR itself for a single file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

_MARKER = ".mlform-complete"  # registry.models.materialize's, not the model's


@dataclass(frozen=True, slots=True)
class Mounted:
    azureml: Path  # AZUREML_MODEL_DIR
    files: Path  # MLFORM_MODEL_DIR

    def variables(self, at: str) -> dict[str, str]:
        """AZUREML_MODEL_DIR and MLFORM_MODEL_DIR once `azureml` is copied to `at` (in an
        image)."""
        inner = self.files.relative_to(self.azureml).as_posix()
        return {
            "AZUREML_MODEL_DIR": at,
            "MLFORM_MODEL_DIR": at if inner == "." else f"{at}/{inner}",
        }


def mount(cached: Path, folder: str | None, target: Path) -> Mounted:
    """The files of `cached` (a materialized version) under `target`, hard-linked (else
    copied), inside a folder named `folder` unless it is None."""
    if target.exists():
        shutil.rmtree(target)
    files = target / folder if folder else target
    files.mkdir(parents=True)
    for source in sorted(cached.rglob("*")):
        if not source.is_file() or source.relative_to(cached).as_posix() == _MARKER:
            continue
        path = files / source.relative_to(cached)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, path)
        except OSError:
            shutil.copy2(source, path)
    return Mounted(target, files)
