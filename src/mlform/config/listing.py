"""The YAML files of a workspace folder, and the entries named like one that are not.

A dangling symlink, or one to a device or a pipe, named `*.yml` is something the user
meant to declare: it is reported, never read (reading a pipe would wait forever) and
never skipped without a word. A folder named `*.yml` is left alone, as git keeps it.
"""

from __future__ import annotations

import os
import stat

from mlform.errors import Problem

SUFFIXES = (".yml", ".yaml")

_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
}


def yaml_files(base: str | os.PathLike[str], folder: str) -> tuple[list[str], list[Problem]]:
    """Names of the regular YAML files in `base` (sorted), and a problem per entry named
    like one that cannot be read as a file; `folder` is `base` as the user sees it."""
    names: list[str] = []
    problems: list[Problem] = []
    for entry in sorted(os.scandir(base), key=lambda e: e.name):
        if not entry.name.endswith(SUFFIXES):
            continue
        shown = f"{folder}/{entry.name}"
        try:
            mode = os.stat(entry.path).st_mode
        except OSError:
            target = os.readlink(entry.path) if entry.is_symlink() else entry.name
            problems.append(
                Problem(
                    shown,
                    1,
                    1,
                    f"a symlink to {target}, which does not exist; restore its target or "
                    "remove the link",
                )
            )
            continue
        if stat.S_ISREG(mode):
            names.append(entry.name)
        elif not stat.S_ISDIR(mode):
            what = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            via = (
                f" (through the symlink to {os.readlink(entry.path)})" if entry.is_symlink() else ""
            )
            problems.append(
                Problem(
                    shown,
                    1,
                    1,
                    f"{what}{via}, not a file mlform can read; replace it with a YAML file "
                    "or remove it",
                )
            )
    return names, problems
