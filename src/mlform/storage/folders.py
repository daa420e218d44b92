"""A whole folder kept in a datastore: each file a content-addressed blob, and a manifest
(itself a blob) naming them by path.

A run's outputs and logs are kept this way when it ends, so that a run applied on one
machine (CI) can be downloaded and read on another (a laptop) through a shared datastore.
Files stream in and out in blocks: nothing reads a whole model into memory. A file kept
before (a model registered from the same outputs, yesterday's identical log) is stored
once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from mlform.errors import DatastoreError, NotFound
from mlform.storage import Storage
from mlform.storage.blobs import blob_key, ingest

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Kept:
    path: str  # relative, with forward slashes
    sha256: str
    size: int


def keep(storage: Storage, root: Path, folders: tuple[str, ...]) -> str:
    """Keep the files under `root/<folder>` for each folder; return the manifest's digest.
    Symbolic links are not followed: a run's outputs are its own files."""
    kept: list[Kept] = []
    for name in folders:
        top = root / name
        if not top.is_dir():
            continue
        for folder, dirs, files in os.walk(top):
            dirs.sort()
            for file in sorted(files):
                path = Path(folder) / file
                if path.is_symlink() or not path.is_file():
                    continue
                digest, size = ingest(storage, path, link=True)
                kept.append(Kept(path.relative_to(root).as_posix(), digest, size))
    manifest = json.dumps(
        {"files": [[k.path, k.sha256, k.size] for k in kept]}, separators=(",", ":")
    )
    with tempfile.TemporaryDirectory(prefix="mlform-manifest-") as scratch:
        written = Path(scratch) / "manifest.json"
        written.write_text(manifest, encoding="utf-8")
        digest, _ = ingest(storage, written)
    return digest


def listing(storage: Storage, manifest: str) -> list[Kept]:
    """The files a manifest names; NotFound if it is not in `storage`."""
    key = blob_key(manifest)
    if not storage.exists(key):
        raise NotFound(f"the files of manifest {manifest[:12]} are not in {storage.url}")
    with storage.open(key) as handle:
        data = json.load(handle)
    found = [Kept(str(p), str(d), int(s)) for p, d, s in data["files"]]
    for kept in found:
        parts = PurePosixPath(kept.path).parts
        if kept.path.startswith("/") or ".." in parts:
            raise DatastoreError(f"manifest {manifest[:12]} names a path outside it: {kept.path}")
    return found


def restore(storage: Storage, manifest: str, dest: Path, *, only: str | None = None) -> int:
    """Write the files a manifest names under `dest` (those under `only/`, if given),
    streamed; return how many."""
    count = 0
    for kept in listing(storage, manifest):
        if only is not None and not kept.path.startswith(f"{only}/"):
            continue
        target = dest / kept.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(blob_key(kept.sha256)) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
        count += 1
    return count


def open_file(storage: Storage, manifest: str, path: str) -> BinaryIO | None:
    """One kept file (a log), open for reading in blocks; None if the manifest has none."""
    for kept in listing(storage, manifest):
        if kept.path == path:
            return storage.open(blob_key(kept.sha256))
    return None
