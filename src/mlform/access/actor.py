"""Who acts from the command line, for the audit log.

An apply of a clean git work tree applies a commit: its author is who asked for the
change (and a reviewed pull request's merge is whoever merged it). Otherwise, and for
what only the machine's owner can do (managing tokens), it is the OS user running mlform.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from pathlib import Path

from mlform import gitinfo


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        return f"uid {os.getuid()}"


def applier(root: Path, ignore: Sequence[Path] = ()) -> str:
    """The git author of the commit at `root` if its work tree is clean, else the OS user."""
    info = gitinfo.describe(root, ignore)
    if info.commit is not None and info.dirty is False and info.author:
        return info.author
    return os_user()
