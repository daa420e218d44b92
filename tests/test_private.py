"""Private files and folders: their modes are set, not left to the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlform import private


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.fixture(params=[0o000, 0o022, 0o277], ids=["open", "usual", "owner-read-only"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def test_files_are_0600_and_created_folders_0700(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "a" / "b" / "secret.json"
    private.write(target, b"{}")
    private.write(target, b'{"again": 1}')  # replaced, still its owner's
    assert target.read_bytes() == b'{"again": 1}'
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", target)] == [
        "0o700",
        "0o700",
        "0o600",
    ]
    assert sorted(p.name for p in target.parent.iterdir()) == ["secret.json"]
    fd = private.open_fd(tmp_path / "lock", os.O_RDWR)
    os.close(fd)
    assert mode(tmp_path / "lock") == "0o600"


def test_mlform_home_is_made_private_and_a_users_folder_is_left_alone(tmp_path: Path) -> None:
    home, mine = tmp_path / ".mlform", tmp_path / "mine"
    for folder in (home, mine):
        folder.mkdir()
        folder.chmod(0o755)
    private.folder(home)
    private.folder(mine)
    assert (mode(home), mode(mine)) == ("0o700", "0o755")
