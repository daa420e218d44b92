"""The `secrets:` of workspace.yml: a name and where its value comes from.

secrets:
  - name: API_TOKEN
    age: secrets/API_TOKEN.age     # committed, encrypted (see `mlform.secrets.age`)
  - name: DB_PASSWORD
    env: DB_PASSWORD               # what a CI system's secrets become
  - name: STORAGE_KEY
    file: ~/.config/acme/storage-key   # outside the repository, mode 0600
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlform.config.specs import Source
from mlform.config.yamlfile import Document
from mlform.errors import Problem

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KINDS = ("env", "file", "age")


@dataclass(frozen=True, slots=True)
class Secret:
    name: str
    kind: str  # env | file | age
    target: str  # the variable, or the path as written
    source: Source  # where it is declared

    @property
    def described(self) -> str:
        """`age: secrets/API_TOKEN.age`, as written."""
        return f"{self.kind}: {self.target}"

    def path(self, root: Path) -> Path:
        """The file of a `file:` or `age:` secret (`~` expanded, relative to `root`)."""
        return root / Path(self.target).expanduser()


def parse(
    ws: Document, bad: frozenset[tuple[str | int, ...]], root: Path
) -> tuple[dict[str, Secret], list[Problem], set[str]]:
    """The declared secrets by name, what is wrong with their declarations, and the names
    of those too broken to use (a reference to one is not a second error). Entries the
    schema rejected are left out (its errors say why)."""
    listed = ws.data.get("secrets") if isinstance(ws.data, dict) else None
    found: dict[str, Secret] = {}
    problems: list[Problem] = []
    broken: set[str] = set()
    for index, item in enumerate(listed if isinstance(listed, list) else []):
        where: tuple[str | int, ...] = ("secrets", index)
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            broken.add(str(item["name"]))
        if not isinstance(item, Mapping) or any(where[: len(b)] == b for b in bad if b):
            continue
        if any(b[:2] == where for b in bad) or not isinstance(item.get("name"), str):
            continue
        source = Source(ws, where)
        name = str(item["name"])
        problem = _declaration_problem(item, source, root)
        if problem is not None:
            problems.append(problem)
            continue
        kind = next(k for k in KINDS if k in item)
        secret = Secret(name, kind, str(item[kind]), source)
        if name in found:
            line, col = ws.locate([*found[name].source.where, "name"])
            problems.append(
                source.problem(
                    ["name"],
                    f"duplicate secret name '{name}': also declared at "
                    f"{ws.display}:{line}:{col}; rename one of them",
                )
            )
            continue
        found[name] = secret
    return found, problems, broken - set(found)


def _declaration_problem(item: Mapping[str, Any], source: Source, root: Path) -> Problem | None:
    name = item["name"]
    if not NAME.fullmatch(name):  # the schema's `$` lets a final newline through
        return source.problem(
            ["name"], f"secret name {name!r} is not valid: use letters, digits and _"
        )
    given = [k for k in KINDS if k in item]
    if not given:
        return source.problem(
            [],
            f"secret {name} needs a source: env: VARIABLE, file: PATH (outside the "
            f"repository) or age: secrets/{name}.age (committed, encrypted)",
        )
    if len(given) > 1:
        return source.problem(
            [given[1]],
            f"secret {name} has both {given[0]}: and {given[1]}:; keep one source",
            key=True,
        )
    kind = given[0]
    target = str(item[kind])
    if kind == "file":
        path = (root / Path(target).expanduser()).resolve()
        repository = repository_root(root)
        if path.is_relative_to(repository):
            return source.problem(
                ["file"],
                f"file: {target} is inside the repository, where it would be committed; "
                f"keep it outside (e.g. ~/.config/{name.lower()}), or commit it encrypted "
                f"with age: secrets/{name}.age",
            )
    if kind == "age":
        path = (root / target).resolve()
        if target.startswith("~") or not path.is_relative_to(root.resolve()):
            return source.problem(
                ["age"],
                f"age: {target} must be inside the workspace, where it is committed "
                f"(e.g. secrets/{name}.age)",
            )
    return None


def repository_root(root: Path) -> Path:
    """The git repository holding the workspace, else the workspace itself."""
    root = root.resolve()
    for folder in (root, *root.parents):
        if os.path.exists(folder / ".git"):
            return folder
    return root
