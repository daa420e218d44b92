"""The branch the agent follows, kept in a working folder of its own.

The folder is a clone of the remote; each sync fetches the branch and moves the working
tree to its head, removing untracked files. Ignored files, `.mlform/` among them, are
kept: the state's copies, caches and environments live there.
"""

from __future__ import annotations

from pathlib import Path

from mlform import gitinfo
from mlform.errors import MlformError


class Checkout:
    def __init__(self, source: str, branch: str, folder: Path, path: Path = Path(".")) -> None:
        self.source = source
        self.branch = branch
        self.folder = folder
        self.workspace = folder / path  # the workspace's root inside the repository

    def sync(self) -> str:
        """Fetch the branch and check its head out; return the commit."""
        try:
            return gitinfo.follow(self.source, self.branch, self.folder)
        except ValueError as err:
            raise MlformError(
                f"cannot follow {self.branch} of {self.source} in {self.folder}: {err}"
            ) from err
