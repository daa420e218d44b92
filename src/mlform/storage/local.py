"""A datastore that is a folder on this machine."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import BinaryIO

from mlform import durable
from mlform.durable import make_folders, settle
from mlform.errors import DatastoreError

_FICLONE = 0x40049409  # Linux ioctl: share the source's blocks (btrfs, xfs), no data copied


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DatastoreError(f"cannot create datastore folder {self.root}: {err}") from err

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def put(self, source: Path, key: str) -> None:
        target = self.root / key
        partial = durable.partial(target)
        try:
            make_folders(target.parent)
            copy_file(source, partial)
            settle(partial, target)
        except OSError as err:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise DatastoreError(f"cannot store {source} in {self.root}: {err}") from err

    def open(self, key: str) -> BinaryIO:
        return (self.root / key).open("rb")

    def local_path(self, key: str) -> Path | None:
        return self.root / key


def copy_file(source: Path, target: Path) -> None:
    """Copy with a reflink when the filesystem can, else the kernel's own copy."""
    with source.open("rb") as src, target.open("wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
            return
        except OSError:
            pass
        _sendfile(src, dst)


def _sendfile(src: BinaryIO, dst: BinaryIO) -> None:
    size = os.fstat(src.fileno()).st_size
    offset = 0
    while offset < size:
        sent = os.sendfile(dst.fileno(), src.fileno(), offset, size - offset)
        if sent == 0:
            break
        offset += sent
