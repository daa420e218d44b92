"""Find a workspace, read every file in it, and check it as a whole.

`load` reports every problem at once (schema errors, missing files, duplicate names,
unknown references, cycles), each as `path:line:col: message`, or returns a `Config`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlform.config import schema, specs
from mlform.config.refs import DatastorePath, LocalPath, Url
from mlform.config.specs import (
    IMPLICIT_DATASTORE,
    DataSpec,
    DatastoreSpec,
    EnvironmentSpec,
    Source,
    Spec,
)
from mlform.config.yamlfile import Document, read_document
from mlform.errors import ConfigInvalid, Problem, WorkspaceNotFound
from mlform.graph import find_cycles

WORKSPACE_FILES = ("workspace.yml", "workspace.yaml")
DEFAULT_STATE = ".mlform/state.duckdb"

Parser = Callable[[Mapping[str, Any], Source], Spec]

# kind folder → (kind, parser). Adding a kind is one line here and one module in resources/.
FOLDERS: dict[str, tuple[str, Parser]] = {
    "data": ("data", specs.data),
    "environments": ("environment", specs.environment),
}


@dataclass(frozen=True)
class Config:
    """A workspace as declared: every spec by address, and what each depends on."""

    root: Path
    name: str
    state_path: Path
    default_datastore: str
    specs: dict[str, Spec]
    deps: dict[str, tuple[str, ...]]
    warnings: list[Problem] = field(default_factory=list)

    def datastore(self, name: str) -> DatastoreSpec:
        spec = self.specs[f"datastore/{name}"]
        assert isinstance(spec, DatastoreSpec)
        return spec


def find_root(start: Path) -> Path:
    """The nearest folder at or above `start` that holds a workspace.yml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if any((folder / name).is_file() for name in WORKSPACE_FILES):
            return folder
    raise WorkspaceNotFound(
        f"no workspace.yml in {start} or any folder above it; "
        "run `mlform init` to create a workspace, or pass -C PATH"
    )


def load(root: Path) -> Config:
    loader = _Loader(root)
    return loader.run()


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[Problem] = []
        self.specs: dict[str, Spec] = {}
        self.invalid: set[str] = set()  # addresses declared in files that failed validation

    def run(self) -> Config:
        ws = self._read(self._workspace_file(), "workspace")
        body = ws.data if isinstance(ws.data, dict) else {}
        name = str(body.get("name", self.root.name))
        state_path = (self.root / str(body.get("state", DEFAULT_STATE))).resolve()
        default = self._datastores(ws, body)
        for folder, (kind, parse) in FOLDERS.items():
            for doc in self._documents(folder, kind):
                self._add(parse(doc.data, Source(doc)))
        deps = {address: self._dependencies(spec, default) for address, spec in self.specs.items()}
        self._check_cycles(deps)
        errors = [p for p in self.problems if p.severity == "error"]
        if errors:
            raise ConfigInvalid(sorted(self.problems, key=_order))
        warnings = [p for p in self.problems if p.severity != "error"]
        return Config(self.root, name, state_path, default, self.specs, deps, warnings)

    # -- reading -------------------------------------------------------------------------

    def _workspace_file(self) -> Path:
        for candidate in WORKSPACE_FILES:
            if (self.root / candidate).is_file():
                return self.root / candidate
        raise WorkspaceNotFound(f"no workspace.yml in {self.root}")

    def _read(self, path: Path, kind: str) -> Document:
        doc = read_document(path, os.path.relpath(path, self.root))
        self.problems.extend(doc.problems)
        if isinstance(doc.data, dict):
            self.problems.extend(schema.check(doc, kind))
        return doc

    def _documents(self, folder: str, kind: str) -> list[Document]:
        base = self.root / folder
        if not base.is_dir():
            return []
        paths = sorted(
            entry.path
            for entry in os.scandir(base)
            if entry.name.endswith((".yml", ".yaml")) and entry.is_file()
        )
        docs = []
        for path in paths:
            before = len(self.problems)
            doc = self._read(Path(path), kind)
            if len(self.problems) == before:
                docs.append(doc)
            elif isinstance(doc.data, dict) and isinstance(doc.data.get("name"), str):
                self.invalid.add(f"{kind}/{doc.data['name']}")
        return docs

    def _add(self, spec: Spec) -> None:
        other = self.specs.get(spec.address)
        if other is not None:
            self.problems.append(
                spec.source.problem(
                    ["name"],
                    f"duplicate {spec.kind} name '{spec.name}': also declared at "
                    f"{other.source}; rename one of them",
                )
            )
            return
        self.specs[spec.address] = spec
        self._check_files(spec)

    def _datastores(self, ws: Document, body: Mapping[str, Any]) -> str:
        declared = body.get("datastores") or []
        if not isinstance(declared, list):
            return IMPLICIT_DATASTORE
        defaults: list[DatastoreSpec] = []
        for index, item in enumerate(declared):
            if not isinstance(item, dict) or "name" not in item:
                continue
            store = specs.datastore(item, Source(ws, ("datastores", index)), self.root)
            if store.default:
                defaults.append(store)
            self._add(store)
        stores = [s for s in self.specs.values() if isinstance(s, DatastoreSpec)]
        if len(defaults) > 1:
            for extra in defaults[1:]:
                self.problems.append(
                    extra.source.problem(
                        ["default"],
                        f"datastores '{defaults[0].name}' and '{extra.name}' are both "
                        "default; mark only one with default: true",
                    )
                )
        if defaults:
            return defaults[0].name
        if len(stores) == 1:
            return stores[0].name
        if not any(s.name == IMPLICIT_DATASTORE for s in stores):
            implicit = specs.datastore({"name": IMPLICIT_DATASTORE}, Source(ws, ()), self.root)
            self.specs[implicit.address] = implicit
        return IMPLICIT_DATASTORE

    # -- checks --------------------------------------------------------------------------

    def _check_files(self, spec: Spec) -> None:
        if isinstance(spec, DataSpec):
            self._check_data_location(spec)
        elif isinstance(spec, EnvironmentSpec):
            for key, path in (("requirements", spec.requirements), ("conda_file", spec.conda_file)):
                if isinstance(path, Path) and not path.is_file():
                    self.problems.append(
                        spec.source.problem(
                            [key], f"{key} file '{spec.body[key]}' does not exist ({path})"
                        )
                    )
        elif isinstance(spec, DatastoreSpec) and isinstance(spec.location, Url):
            self._check_protocol(spec, spec.location, ["path"])

    def _check_data_location(self, spec: DataSpec) -> None:
        location = spec.location
        if isinstance(location, Url):
            self._check_protocol(spec, location, ["path"])
            return
        if isinstance(location, DatastorePath):
            return  # checked with the other references, once every datastore is known
        assert isinstance(location, LocalPath)
        path = location.path
        written = spec.body["path"]
        if not path.exists():
            self.problems.append(
                spec.source.problem(["path"], f"path '{written}' does not exist ({path})")
            )
        elif spec.type == "uri_file" and not path.is_file():
            self.problems.append(
                spec.source.problem(
                    ["path"], f"'{written}' is a folder but type is uri_file; use type: uri_folder"
                )
            )
        elif spec.type in ("uri_folder", "mltable") and not path.is_dir():
            self.problems.append(
                spec.source.problem(
                    ["path"],
                    f"'{written}' is a file but type is {spec.type}; use type: uri_file",
                )
            )
        elif spec.type == "mltable" and not (path / "MLTable").is_file():
            self.problems.append(
                spec.source.problem(
                    ["path"], f"'{written}' has no MLTable file; add one or use type: uri_folder"
                )
            )

    def _check_protocol(self, spec: Spec, url: Url, where: list[str | int]) -> None:
        from mlform.storage import protocol_problem

        message = protocol_problem(url.scheme)
        if message:
            self.problems.append(spec.source.problem(where, message))

    def _dependencies(self, spec: Spec, default: str) -> tuple[str, ...]:
        deps: list[str] = []
        if isinstance(spec, DataSpec):
            store = default
            if isinstance(spec.location, DatastorePath):
                store = spec.location.datastore
                if f"datastore/{store}" not in self.specs:
                    known = [s.name for s in self.specs.values() if isinstance(s, DatastoreSpec)]
                    self.problems.append(
                        spec.source.problem(
                            ["path"],
                            f"unknown datastore '{store}'{schema.did_you_mean(store, known)}; "
                            "declare it under datastores: in workspace.yml",
                        )
                    )
            deps.append(f"datastore/{store}")
        for index, address in enumerate(spec.depends_on):
            if address in self.invalid:
                continue  # its own file's problems are already reported
            if address not in self.specs:
                self.problems.append(
                    spec.source.problem(
                        ["depends_on", index],
                        f"depends_on '{address}' is not declared"
                        + schema.did_you_mean(address, list(self.specs)),
                    )
                )
            elif address == spec.address:
                self.problems.append(
                    spec.source.problem(["depends_on", index], "a resource cannot depend on itself")
                )
            else:
                deps.append(address)
        return tuple(dict.fromkeys(d for d in deps if d in self.specs))

    def _check_cycles(self, deps: dict[str, tuple[str, ...]]) -> None:
        for cycle in find_cycles(deps):
            text = " → ".join(cycle)
            for address, nxt in itertools.pairwise(cycle):
                spec = self.specs[address]
                where: list[str | int] = ["depends_on"]
                if nxt in spec.depends_on:
                    where.append(spec.depends_on.index(nxt))
                self.problems.append(
                    spec.source.problem(
                        where, f"dependency cycle: {text}; remove one of these depends_on entries"
                    )
                )


def _order(problem: Problem) -> tuple[str, int, int]:
    return (problem.path, problem.line, problem.col)
