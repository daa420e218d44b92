"""Entries named like YAML files that are not files are reported, never read or skipped."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def test_dangling_and_special_symlinks_are_reported(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace({"workspace.yml": "name: links\n", "data/iris.csv": "a\n1\n"})
    (root / "data" / "gone.yml").symlink_to(root / "nowhere.yml")
    (root / "data" / "null.yml").symlink_to("/dev/null")
    (root / "environments").mkdir()
    os.mkfifo(root / "environments" / "pipe.yml")
    (root / "data" / "folder.yml").mkdir()  # a folder is no declaration: left alone
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        f"data/gone.yml:1:1: error: a symlink to {root}/nowhere.yml, which does not exist; "
        "restore its target or remove the link",
        "data/null.yml:1:1: error: a character device (through the symlink to /dev/null), "
        "not a file mlform can read; replace it with a YAML file or remove it",
        "environments/pipe.yml:1:1: error: a named pipe, not a file mlform can read; replace "
        "it with a YAML file or remove it",
        "validation failed: 3 errors",
    ]
