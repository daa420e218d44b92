"""The kinds of resource a workspace declares, and what the loader asks of each.

The loader knows no kind: it reads each registered kind's folder, and asks the kind to
build a spec from a document (`parse`), to check it against the files it names
(`check`), and to say what it depends on (`references`), which the kind resolves with
the loader's `Resolver`. Adding a kind is its package under `mlform.kinds`, one line in
`REGISTERED` and its schema file (`schema/<kind>.schema.json`).

A kind's package is imported the first time a file of its folder is read or a resource
of its kind is planned: a workspace without endpoints never loads what serving needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from mlform.config.refs import AssetRef, Location
from mlform.config.specs import Source, Spec
from mlform.config.yamlfile import JsonPath
from mlform.errors import Problem


@dataclass(frozen=True, slots=True)
class Registered:
    name: str  # the kind, as addresses spell it: `endpoint/iris`
    folder: str  # where its files are: endpoints/
    package: str  # the package that implements it; its `KIND` is the implementation


# One line per kind. The order is the order the folders are read in, so the order specs
# are listed in when nothing orders them.
REGISTERED = (
    Registered("data", "data", "mlform.kinds.data"),
    Registered("environment", "environments", "mlform.kinds.environment"),
    Registered("runconfig", "runconfigs", "mlform.kinds.runconfig"),
    Registered("pipeline", "pipelines", "mlform.kinds.pipeline"),
    Registered("model", "models", "mlform.kinds.model"),
    Registered("image", "images", "mlform.kinds.image"),
    Registered("endpoint", "endpoints", "mlform.kinds.endpoint"),
    Registered("compute", "compute", "mlform.kinds.compute"),
    # declared in workspace.yml, not in a folder of their own
    Registered("datastore", "", "mlform.kinds.datastore"),
)
BY_NAME = {entry.name: entry for entry in REGISTERED}
FOLDERS = {entry.folder: entry.name for entry in REGISTERED if entry.folder}


class Resolver(Protocol):
    """What a kind resolves its references with: the other declarations of the
    workspace. Each method reports a problem where the reference is written when it
    names nothing declared (unless that thing's own file is broken: its errors say so)."""

    def problem(self, problem: Problem) -> None:
        """Report a problem of the spec being resolved."""

    def asset(self, kind: str, ref: AssetRef, source: Source, where: JsonPath) -> str | None:
        """The address of the asset `ref` names (azureml:NAME:N, NAME@latest, a registry
        URI), declared here."""

    def reference(self, kind: str, name: str, source: Source, where: JsonPath) -> str | None:
        """The address of `kind/name`, declared here."""

    def fits(self, kind: str, ref: AssetRef, source: Source) -> bool:
        """False, with a problem, when an Azure ML URI names an asset of another kind."""

    def declared(self, kind: str) -> list[str]:
        """The names of `kind` declared here, those in files too broken to build too."""

    def datastore(self, location: Location, source: Source, where: JsonPath) -> str:
        """The address of the datastore a data or model path is on: the one it names
        (azureml://datastores/NAME/paths/…), else the default one."""

    def is_declared(self, address: str) -> bool:
        """Whether `address` is declared here and built."""

    def producers(self, kind: str, name: str) -> Sequence[str]:
        """The addresses that make versions of `kind/name` (a model a runconfig
        registers), in the order they are declared."""


S = TypeVar("S", bound=Spec)
Parser = Callable[[Mapping[str, Any], Source], Spec]


class Declaring(Protocol[S]):
    """What the loader asks of a kind."""

    name: str
    # Documents in the kind's folder that have key K declare a part of another kind:
    # K → (that kind, its parser). A deployment in a file of its own names its endpoint.
    parts: ClassVar[Mapping[str, tuple[str, Parser]]] = {}

    def parse(self, body: Mapping[str, Any], source: Source) -> S:
        """The spec a validated document (or entry of one) declares."""

    def check(self, spec: S, root: Path, skip: Collection[str]) -> list[Problem]:
        """What is wrong with the files the spec names; `skip`: keys the schema rejected."""
        return []

    def references(self, spec: S, refs: Resolver) -> list[str]:
        """The addresses the spec depends on, each resolved with `refs`."""
        return []

    def produces(self, spec: S) -> list[tuple[str, str, JsonPath]]:
        """What the spec makes versions of: (kind, name, where the name is written)."""
        return []


def declaring(name: str) -> Declaring[Any]:
    """The implementation of kind `name` (its package imported on first use)."""
    kind: Declaring[Any] = importlib.import_module(BY_NAME[name].package).KIND
    return kind
