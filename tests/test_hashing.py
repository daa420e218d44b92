"""File and folder digests, and the stat cache that spares reading unchanged files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlform import hashing
from mlform.hashing import Hasher, sha256_bytes

LONG_AGO = 1_600_000_000_000_000_000  # ns: well outside the two-second racy window


def _files(root: Path, files: dict[str, bytes], mtime: int | None = None) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mtime is not None:
            os.utime(path, ns=(mtime, mtime))


def test_a_folder_is_every_file_under_it_by_relative_path(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _files(root, {"b.csv": b"b", "sub/a.csv": b"aa", "sub/deeper/c.txt": b"ccc"})
    (root / "linked").symlink_to(root / "sub", target_is_directory=True)  # followed
    entries = Hasher(None).folder(root)
    assert [(e.relpath, e.size, e.sha256) for e in entries] == [
        ("b.csv", 1, sha256_bytes(b"b")),
        ("linked/a.csv", 2, sha256_bytes(b"aa")),
        ("linked/deeper/c.txt", 3, sha256_bytes(b"ccc")),
        ("sub/a.csv", 2, sha256_bytes(b"aa")),
        ("sub/deeper/c.txt", 3, sha256_bytes(b"ccc")),
    ]


def test_unchanged_files_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cache = tmp_path / "data", tmp_path / "hashes.json"
    _files(root, {"x.csv": b"1,2\n", "y/z.csv": b"3\n"}, mtime=LONG_AGO)
    first = Hasher(cache)
    listed = first.folder(root)
    single = first.file(root / "x.csv")
    first.save()

    def unread(path: Path) -> str:
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(hashing, "sha256_file", unread)
    again = Hasher(cache)
    assert again.folder(root) == listed
    assert again.file(root / "x.csv") == single == sha256_bytes(b"1,2\n")


def test_a_file_changed_within_two_seconds_is_never_trusted_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cache = tmp_path / "data", tmp_path / "hashes.json"
    _files(root, {"fresh.csv": b"new\n"})  # modified just now: it could change again unseen
    first = Hasher(cache)
    assert first.file(root / "fresh.csv") == sha256_bytes(b"new\n")
    first.save()
    reads: list[Path] = []
    real = hashing.sha256_file

    def counted(path: Path) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(hashing, "sha256_file", counted)
    assert Hasher(cache).file(root / "fresh.csv") == sha256_bytes(b"new\n")
    assert reads == [root / "fresh.csv"]
