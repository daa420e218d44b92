"""Putting a fully written file under its final name so that it survives a crash.

Every object mlform keeps on a local datastore (a blob, a snapshot zip, a model file) is
written under a temporary name first, then `settle` makes it durable: the file's data is
flushed to disk, folders it needs are created and recorded in their parents, it is
renamed into place, and the folder that now names it is flushed too. Only then does the
caller record it in the state, so a state that names an object never outlives the object
after a power cut (the rename alone is atomic for readers, not durable: see fsync(2) and
rename(2)). A reader never sees a partial file under the final name.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def partial(target: Path) -> Path:
    """A temporary name beside `target`, its own: two writers of one file, threads of one
    process included, never write into each other's partial file."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")


def settle(partial: Path, target: Path) -> None:
    """Flush `partial`, then rename it to `target` and flush the folder holding it."""
    fsync_path(partial)
    make_folders(target.parent)
    os.replace(partial, target)
    fsync_path(target.parent)


def make_folders(folder: Path) -> None:
    """`mkdir -p`, flushing the parent of each folder it creates so the new name lasts."""
    missing: list[Path] = []
    at = folder
    while not at.is_dir():
        missing.append(at)
        at = at.parent
    for made in reversed(missing):
        try:
            made.mkdir()
        except FileExistsError:  # another writer made it first: theirs to flush
            continue
        fsync_path(made.parent)


def fsync_path(path: Path) -> None:
    """fsync a file or a folder by name (a folder can only be opened read-only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
