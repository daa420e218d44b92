"""Local paths stay inside the workspace, symbolic links included.

A workspace's files are reviewed in pull requests and applied by CI; a `path:` that
reaches `/etc/passwd` or `~/.ssh` (directly, with `../`, as `file://`, or through a
symlink) would copy that file into the datastore or a snapshot. So every local path a
file names must resolve, links followed, inside the workspace folder or the git
repository that holds it. Data outside is reached by declaring it: a local datastore
whose `path:` is an outside folder is the explicit opt-in, and paths under that folder
are then fine (for data and models, the kinds a datastore holds).

A repository at the home folder or at `/` (a dotfiles repository) widens nothing: it
would let every file of the user through.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mlform.config.refs import LocalPath
from mlform.config.specs import DataInput, DatastoreSpec, Source
from mlform.config.yamlfile import Where
from mlform.errors import Problem


@dataclass(frozen=True, slots=True)
class Boundary:
    """The folders local paths may resolve into."""

    workspace: str  # real paths, without a trailing separator
    repository: str | None
    datastores: tuple[tuple[str, str], ...] = ()  # (name, real folder) declared local

    @classmethod
    def of(cls, root: Path, datastores: Iterable[DatastoreSpec] = ()) -> Boundary:
        stores = tuple(
            (spec.name, os.path.realpath(spec.location.path))
            for spec in datastores
            if isinstance(spec.location, LocalPath)
        )
        return cls(os.path.realpath(root), repository_of(os.path.realpath(root)), stores)

    def outside(self, path: Path | str, *, data: bool = False) -> str | None:
        """`path`'s real target when it lies outside the boundary, else None."""
        target = os.path.realpath(path)
        folders = [self.workspace, *([self.repository] if self.repository else [])]
        if data:
            folders.extend(folder for _, folder in self.datastores)
        return None if any(_under(target, folder) for folder in folders) else target

    def where(self) -> str:
        if self.repository and self.repository != self.workspace:
            return f"the repository ({self.repository})"
        return f"the workspace ({self.workspace})"

    def message(self, what: str, written: str, path: Path, target: str, *, data: bool) -> str:
        linked = os.path.realpath(path) != os.path.abspath(path)
        via = " through a symbolic link" if linked else ""
        message = f"{what} '{written}' resolves{via} to {target}, outside {self.where()}; "
        if data:
            return message + (
                "copy it into the workspace, or declare a local datastore in workspace.yml "
                "whose path: is the folder that holds it (paths under a declared datastore "
                "are allowed)"
            )
        return message + "move it into the workspace"


@cache
def repository_of(folder: str) -> str | None:
    """The git repository holding `folder`, unless it is the home folder or `/`."""
    for candidate in (folder, *map(str, Path(folder).parents)):
        if os.path.exists(os.path.join(candidate, ".git")):
            home = os.path.realpath(os.path.expanduser("~"))
            return None if candidate in (home, os.sep) else candidate
    return None


def _under(target: str, folder: str) -> bool:
    return target == folder or target.startswith(folder.rstrip(os.sep) + os.sep)


def check_paths(paths: Iterable[Found], boundary: Boundary) -> list[Problem]:
    """A problem for each of the `paths` the specs name that resolves outside `boundary`."""
    problems = []
    for source, where, what, written, path, data in paths:
        target = boundary.outside(path, data=data)
        if target is not None:
            message = boundary.message(what, written, path, target, data=data)
            problems.append(source.problem(where, message))
        elif data and os.path.isdir(path):
            # A data or model folder is copied whole, its links followed.
            link = link_outside(path, boundary)
            if link is not None:
                inner, target = link
                message = (
                    f"{what} '{written}' holds {inner}, a symbolic link to {target}, outside "
                    f"{boundary.where()}; copy what it points at into the folder instead"
                )
                problems.append(source.problem(where, message))
    return problems


def link_outside(folder: Path, boundary: Boundary) -> tuple[str, str] | None:
    """The first link under `folder` (relative path, target) leading outside `boundary`."""
    for top, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted([*dirs, *names]):
            full = os.path.join(top, name)
            if os.path.islink(full):
                target = boundary.outside(full, data=True)
                if target is not None:
                    return os.path.relpath(full, folder), target
    return None


Found = tuple[Source, Where, str, str, Path, bool]


def code_path(source: Source, body: object, where: Where, code: Path | None) -> Iterator[Found]:
    """The code folder a spec names, if it names one."""
    if code is not None:
        yield found(source, body, where, "code", code, False)


def input_paths(source: Source, body: object, at: Where, inputs: object) -> Iterator[Found]:
    """The local paths a spec's data inputs name."""
    for name, value in inputs.items() if isinstance(inputs, Mapping) else ():
        if isinstance(value, DataInput) and isinstance(value.location, LocalPath):
            where = (*at, "inputs", name, "path")
            yield found(source, body, where, "input path", value.location.path, True)


def found(source: Source, body: object, where: Where, what: str, path: Path, data: bool) -> Found:
    """A path a spec names: where it is written, what it is, and whether it is data."""
    written: object = body
    for step in where:
        written = written.get(step) if isinstance(written, Mapping) else None
    return source, where, what, str(written if written is not None else path), path, data
