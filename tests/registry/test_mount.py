"""A model's files laid out as Azure ML mounts them."""

from __future__ import annotations

import os
from pathlib import Path

from mlform.registry.mount import Mounted, mount


def cached(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "cache"
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text)
    (root / ".mlform-complete").write_text("digest")
    return root


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_a_registered_folder_keeps_its_name_under_azureml_model_dir(tmp_path: Path) -> None:
    source = cached(tmp_path, {"sklearn_regression_model.pkl": "m", "extra/notes.txt": "n"})
    target = tmp_path / "azureml-models" / "regression" / "1"
    mounted = mount(source, "model", target)
    assert mounted == Mounted(target, target / "model")
    assert tree(target) == ["model/extra/notes.txt", "model/sklearn_regression_model.pkl"]
    linked = target / "model" / "sklearn_regression_model.pkl"
    assert os.path.samefile(linked, source / "sklearn_regression_model.pkl")  # no copy
    assert mounted.variables("/opt/mlform/model") == {
        "AZUREML_MODEL_DIR": "/opt/mlform/model",
        "MLFORM_MODEL_DIR": "/opt/mlform/model/model",
    }


def test_a_single_registered_file_sits_in_azureml_model_dir(tmp_path: Path) -> None:
    source = cached(tmp_path, {"sample_m1.pkl": "m"})
    target = tmp_path / "mounted"
    (target / "stale").mkdir(parents=True)
    assert mount(source, None, target) == Mounted(target, target)
    assert tree(target) == ["sample_m1.pkl"]
    assert Mounted(target, target).variables("/opt/mlform/model") == {
        "AZUREML_MODEL_DIR": "/opt/mlform/model",
        "MLFORM_MODEL_DIR": "/opt/mlform/model",
    }
