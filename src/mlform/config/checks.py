"""What the kinds' checks share: how a missing path is said, and what a URL may be.

Each kind checks its own spec against the filesystem (`Declaring.check`); none raises. A
key the schema already rejected is passed in `skip` so its check is not run on a guess (a
misspelt `type` would otherwise also report "a file but type is uri_folder").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mlform.config.refs import Url
from mlform.config.schemes import protocol_problem
from mlform.config.specs import Source
from mlform.errors import Problem


def missing(source: Source, what: str, written: str, path: Path, root: Path) -> str:
    """What to say of a path a spec names that does not exist."""
    message = f"{what} '{written}' does not exist"
    if os.path.isabs(written):
        return message
    message += f" (looked for {shown_path(path, root)})"
    # A path written from the workspace root instead of from the file is a common slip.
    from_root = root / written
    if os.path.exists(from_root):
        relative = os.path.relpath(from_root, source.doc.path.parent)
        return f"{message}; paths are relative to this file: write '{relative}'"
    return f"{message}; create it, or correct the path (it is relative to this file)"


def shown_path(path: Path, root: Path) -> str:
    """A path as problems show it: relative to the workspace when inside it."""
    relative = os.path.relpath(path, root)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()


def declared_in_file(source: Source, group: str) -> Mapping[str, object]:
    """The inputs or outputs as the file declares them, those the schema rejected too:
    a command that uses one of those is not told it is undeclared (its own error says
    what is wrong with it)."""
    data = source.doc.data
    for step in source.where:
        data = data.get(step) if isinstance(data, Mapping) else None
    found = data.get(group) if isinstance(data, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def url_problems(source: Source, url: Url, where: list[str | int] | None = None) -> list[Problem]:
    """What is wrong with a URL a spec names as a path, if anything."""
    if url.scheme in ("datastore", "azureml"):
        message = (
            f"'{url.url}' is not a datastore path; write datastore://<datastore>/<path> "
            "or azureml://datastores/<datastore>/paths/<path>"
        )
        return [source.problem(where or ["path"], message)]
    problem = protocol_problem(url.scheme)
    return [source.problem(where or ["path"], problem)] if problem else []
