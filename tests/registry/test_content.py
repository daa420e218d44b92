from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mlform.errors import NotFound
from mlform.hashing import FileEntry, sha256_file, tree_digest
from mlform.registry.content import describe, detect, files_under, store_files
from mlform.storage.blobs import blob_key
from mlform.storage.local import LocalStorage


def sklearn_pickle(path: Path) -> Path:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    path.write_bytes(pickle.dumps(model))
    return path


def test_a_pickle_of_a_scikit_learn_model_is_recognised_without_loading_it(
    tmp_path: Path,
) -> None:
    sklearn_pickle(tmp_path / "model.pkl")
    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    assert detect(["model.pkl"], tmp_path) == ("custom_model", "scikit-learn")
    assert detect(["other.pkl"], tmp_path) == ("custom_model", None)
    (tmp_path / "broken.pkl").write_bytes(b"not a pickle at all")
    assert detect(["broken.pkl"], tmp_path) == ("custom_model", None)


def test_onnx_files_and_mlflow_folders_are_recognised(tmp_path: Path) -> None:
    assert detect(["model.onnx"], None) == ("custom_model", "onnx")
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  python_function: {}\n  sklearn: {pickled_model: model.pkl}\n"
    )
    assert detect(["MLmodel", "model.pkl"], tmp_path) == (
        "mlflow_model",
        "mlflow (python_function, sklearn)",
    )


def test_a_model_saved_by_mlflow_is_an_mlflow_model(tmp_path: Path) -> None:
    # In a process of its own: other tests check that mlform never imports mlflow.
    save = (
        "import sys, warnings; warnings.simplefilter('ignore'); import mlflow.sklearn; "
        "from sklearn.linear_model import LogisticRegression; "
        "m = LogisticRegression().fit([[0.0], [1.0]], [0, 1]); "
        "mlflow.sklearn.save_model(m, sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", save, str(tmp_path / "saved")], check=True)
    files = files_under(tmp_path / "saved")
    stored = describe(
        [FileEntry(rel, path.stat().st_size, sha256_file(path)) for rel, path in files],
        None,
        tmp_path / "saved",
    )
    assert stored.type == "mlflow_model"
    assert stored.framework == "mlflow (python_function, sklearn)"


def test_declaring_mlflow_model_needs_an_mlmodel_file() -> None:
    with pytest.raises(NotFound, match="an mlflow_model needs an MLmodel file"):
        describe([FileEntry("model.pkl", 1, "ab")], "mlflow_model", None)


def test_files_are_stored_by_content_and_the_digest_covers_paths(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"same")
    (folder / "sub" / "b.bin").write_bytes(b"same")
    storage = LocalStorage(tmp_path / "store")
    entries = store_files(storage, files_under(folder))
    assert [(e.relpath, e.size) for e in entries] == [("a.bin", 4), ("sub/b.bin", 4)]
    assert entries[0].sha256 == entries[1].sha256 == sha256_file(folder / "a.bin")
    blobs = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert blobs == [tmp_path / "store" / blob_key(entries[0].sha256)]  # kept once
    stored = describe(entries, None, folder)
    assert stored.digest == tree_digest(entries)
    assert stored.size == 8


def test_an_empty_or_missing_model_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        files_under(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match="has no files"):
        files_under(tmp_path / "empty")
