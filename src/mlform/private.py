"""Files only their owner may read: the state, its side files and the secrets beside it.

Modes are set explicitly rather than left to the umask, which only ever removes bits:
a umask of 0 would leave a file mlform opens as 0600 readable by others if it asked for
0644, and one of 0277 would leave it unwritable by its owner. Folders mlform creates for
these are 0700, and so is `.mlform`, the default home of the state, even when an older
mlform made it 0755: whatever lies inside (run logs, caches, endpoint logs) is then out of
other users' reach too. A folder the user made is left as it is.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TextIO

from mlform.durable import fsync_path
from mlform.durable import partial as partial_name

FILE = 0o600
FOLDER = 0o700
HOME = ".mlform"  # the state's default folder, always made private


def folder(path: Path) -> Path:
    """`path`, created if missing: each folder created 0700, and `.mlform` made so."""
    missing = []
    for parent in (path, *path.parents):
        if parent.is_dir():
            break
        missing.append(parent)
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):
            created.mkdir(mode=FOLDER)
            os.chmod(created, FOLDER)
    if path.name == HOME:
        restrict(path, FOLDER)
    return path


def restrict(path: Path, mode: int = FILE) -> None:
    """Give `path` `mode` if it exists and is not already so (and is ours to change)."""
    try:
        if os.stat(path).st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except (FileNotFoundError, PermissionError):
        pass  # gone meanwhile, or another user's: nothing of ours to protect


def open_fd(path: Path, flags: int) -> int:
    """`os.open(path, flags | O_CREAT)`, the file 0600 whatever the umask."""
    fd = os.open(path, flags | os.O_CREAT, FILE)
    try:
        os.fchmod(fd, FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_text(path: Path, *, append: bool = False) -> TextIO:
    """`path` open for writing text (appended to, or replaced), 0600: for logs, since a
    tool's output may hold what a plan never shows (an index URL with a password)."""
    flags = os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(open_fd(path, flags), "a" if append else "w", encoding="utf-8")


def write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` at once (a reader sees the old file or the new), 0600;
    `durable`: on disk before it replaces the old (not worth it for a mere cache)."""
    folder(path.parent)
    partial = partial_name(path)
    try:
        fd = open_fd(partial, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(partial, path)
        if durable:  # the new name too: the folder that holds it
            fsync_path(path.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
