"""Content digests of files and folders, with a stat cache so unchanged files are not read.

The cache maps a path to (size, mtime_ns, inode, sha256). An entry is trusted only while
all three stat fields match, and never for a file modified within the last two seconds
before it was hashed (git's "racily clean" rule): such a file could change again within
the same timestamp tick.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlform import durable

_RACY_NS = 2_000_000_000
_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_BLOCK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    # Plain descriptor reads, sized to the file: `hashlib.file_digest` allocates a fresh
    # 256 KiB buffer per call, which costs more than hashing a typical source file.
    fd = os.open(path, _READ)
    try:
        sha = hashlib.sha256()
        want = min(os.fstat(fd).st_size + 1, _BLOCK)
        while chunk := os.read(fd, want):
            sha.update(chunk)
            want = _BLOCK
        return sha.hexdigest()
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a folder: its path inside the folder, size and digest."""

    relpath: str
    size: int
    sha256: str


class Hasher:
    """sha256 of files, remembered across runs by stat signature in one JSON file."""

    def __init__(self, cache_path: Path | None) -> None:
        self.cache_path = cache_path
        self._entries: dict[str, list[int | str]] = {}
        self._dirty = False
        if cache_path is not None:
            with contextlib.suppress(OSError, ValueError):
                self._entries = json.loads(cache_path.read_text(encoding="utf-8"))

    def file(self, path: Path, stat: os.stat_result | None = None) -> str:
        return self._digest(str(path), stat or path.stat(), path)

    def _digest(self, key: str, st: os.stat_result, path: Path | None = None) -> str:
        cached = self._entries.get(key)
        if (
            cached is not None
            and cached[0] == st.st_size
            and cached[1] == st.st_mtime_ns
            and cached[2] == st.st_ino
        ):
            return str(cached[3])
        digest = sha256_file(key if path is None else path)  # a Path per file costs µs
        if time.time_ns() - st.st_mtime_ns > _RACY_NS:
            self._entries[key] = [st.st_size, st.st_mtime_ns, st.st_ino, digest]
            self._dirty = True
        return digest

    def folder(self, root: Path) -> list[FileEntry]:
        """Every file under `root` (symlinks followed), sorted by relative path."""
        entries: list[FileEntry] = []
        for path, rel, stat in _walk(str(root)):
            entries.append(FileEntry(rel, stat.st_size, self._digest(path, stat)))
        entries.sort(key=lambda e: e.relpath)
        return entries

    def save(self) -> None:
        if not self._dirty or self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        partial = durable.partial(self.cache_path)
        partial.write_text(json.dumps(self._entries, separators=(",", ":")), encoding="utf-8")
        os.replace(partial, self.cache_path)
        self._dirty = False


def tree_digest(entries: Iterable[FileEntry]) -> str:
    """One digest for a folder: its files' paths and contents, order-independent."""
    return sha256_text(*(f"{e.relpath}\0{e.sha256}" for e in sorted(entries, key=_by_path)))


def _by_path(entry: FileEntry) -> str:
    return entry.relpath


def _walk(root: str) -> Iterable[tuple[str, str, os.stat_result]]:
    """(path, path relative to `root` with '/', stat) of each file: plain strings, since a
    data folder can hold many thousands of files and a `Path` per file adds up."""
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir():
                    stack.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.is_file():
                    yield entry.path, prefix + entry.name, entry.stat()
