"""A model's path: it exists, and an MLflow model has its MLmodel file."""

from __future__ import annotations

import os
from pathlib import Path

from mlform.config.checks import missing, url_problems
from mlform.config.refs import LocalPath, Url
from mlform.errors import Problem
from mlform.kinds.model.spec import ModelSpec


def check(spec: ModelSpec, root: Path) -> list[Problem]:
    location = spec.location
    if isinstance(location, Url):
        return url_problems(spec.source, location)
    if not isinstance(location, LocalPath):
        return []
    written = str(spec.body["path"])
    if not os.path.exists(location.path):
        return [
            spec.source.problem(
                ["path"], missing(spec.source, "model path", written, location.path, root)
            )
        ]
    if spec.type == "mlflow_model" and not os.path.isfile(location.path / "MLmodel"):
        return [
            spec.source.problem(
                ["type"],
                f"'{written}' has no MLmodel file, so it is not an MLflow model; "
                "use type: custom_model or point path: at the folder mlflow saved",
            )
        ]
    return []
