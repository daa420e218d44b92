"""What a model is made of: its files, what kind of model they hold, where they are kept.

A model is one file or a folder of them. Its digest is the tree digest of every file's
path, size and content, so the same files always make the same digest, wherever they
came from (a run's outputs, a models/ file, `mlform models register`).
"""

from __future__ import annotations

import io
import os
import pickletools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlform.errors import NotFound
from mlform.hashing import FileEntry, tree_digest
from mlform.storage import Storage
from mlform.storage.blobs import ingest

_PICKLE_PEEK = 1 << 20  # the classes a pickle names come first: its head is enough
_PICKLES = (".pkl", ".pickle", ".joblib")
CUSTOM, MLFLOW = "custom_model", "mlflow_model"


@dataclass(frozen=True, slots=True)
class Stored:
    """Model files kept in a datastore: the manifest a version records."""

    files: tuple[FileEntry, ...]
    digest: str
    size: int
    type: str
    framework: str | None


def files_under(path: Path) -> list[tuple[str, Path]]:
    """(relpath, file) for a model path: the file itself, or every file in the folder."""
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise NotFound(f"model path {path} does not exist")
    found = []
    for folder, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            full = Path(folder) / name
            found.append((full.relative_to(path).as_posix(), full))
    if not found:
        raise NotFound(f"model folder {path} has no files")
    return found


def folder_name(path: Path) -> str | None:
    """The name a deployment finds a model's files under: the registered folder's last
    component (`model` for `../model-1/model/`), or None for a single file, whose file
    sits directly in AZUREML_MODEL_DIR (Azure ML's "Specify model to deploy for use in
    online endpoint")."""
    return None if path.is_file() else path.absolute().name


def store_files(
    storage: Storage,
    files: Sequence[tuple[str, Path]],
    *,
    link: bool = False,
    known: Callable[[str], str | None] = lambda relpath: None,
) -> list[FileEntry]:
    """Keep each file in `storage` by content, reading it once; the manifest entries."""
    entries = []
    for relpath, path in files:
        digest, size = ingest(storage, path, link=link, known=known(relpath))
        entries.append(FileEntry(relpath, size, digest))
    return entries


def describe(entries: Sequence[FileEntry], declared: str | None, root: Path | None) -> Stored:
    """The manifest with its digest, and the model's type and framework as found.

    `root` is a local copy of the files to look into (None: judge by names only).
    """
    kind, framework = detect([e.relpath for e in entries], root)
    if declared == MLFLOW and kind != MLFLOW:
        raise NotFound("an mlflow_model needs an MLmodel file at the top of its folder")
    return Stored(
        tuple(entries),
        tree_digest(entries),
        sum(e.size for e in entries),
        declared or kind,
        framework,
    )


def detect(relpaths: Iterable[str], root: Path | None) -> tuple[str, str | None]:
    """(type, framework): an MLflow model by its MLmodel file and flavors; else a custom
    model, recognised as scikit-learn (a pickle naming sklearn classes) or ONNX."""
    names = list(relpaths)
    if "MLmodel" in names:
        flavors = _mlflow_flavors(root / "MLmodel") if root is not None else []
        return MLFLOW, "mlflow" + (f" ({', '.join(flavors)})" if flavors else "")
    if any(n.endswith(".onnx") for n in names):
        return CUSTOM, "onnx"
    if any(n.endswith(".skops") for n in names):
        return CUSTOM, "scikit-learn"
    if root is not None:
        for name in names:
            if name.endswith(_PICKLES) and _pickled_sklearn(root / name):
                return CUSTOM, "scikit-learn"
    return CUSTOM, None


def _mlflow_flavors(path: Path) -> list[str]:
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []
    flavors = data.get("flavors") if isinstance(data, dict) else None
    return sorted(flavors) if isinstance(flavors, dict) else []


def _pickled_sklearn(path: Path) -> bool:
    """Whether a pickle names scikit-learn classes, read without unpickling it (loading an
    untrusted pickle runs code; listing its opcodes does not)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_PICKLE_PEEK)
    except OSError:
        return False
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(head)):
            if opcode.name == "GLOBAL" and isinstance(arg, str) and arg.startswith("sklearn"):
                return True
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(str(arg))
            elif opcode.name == "STACK_GLOBAL" and strings[-2:-1] and strings[-2][:7] == "sklearn":
                return True
    except Exception:  # a truncated head or not a pickle at all (joblib's compressed files)
        return False
    return False
