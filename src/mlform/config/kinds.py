"""The kinds a workspace declares, and what the loader asks of each.

The loader knows no kind. It reads each registered kind's folder and asks the kind, by
this protocol, to build a spec from a document (`parse`), to check it against the files
it names (`check`), to say what it defines in place (`defines`), what it depends on
(`references`, resolved with the loader's `Resolver`), what it makes versions of
(`produces`), which local paths it names (`paths`) and which secrets its processes get
(`secret_uses`). Adding a kind is its package under `mlform.kinds`, one line in
`REGISTERED` and its schema file (`schema/<kind>.schema.json`).

A kind's package is imported the first time a file of its folder is read or a resource
of its kind is planned: a workspace without endpoints never loads what serving needs.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Protocol, TypeVar

from mlform.config.containment import Found
from mlform.config.refs import AssetRef, Location
from mlform.config.specs import Source, Spec
from mlform.config.yamlfile import Document, JsonPath, Where
from mlform.errors import Problem


@dataclass(frozen=True, slots=True)
class Registered:
    name: str  # the kind, as addresses spell it: `endpoint/iris`
    folder: str  # where its files are: endpoints/ ("": declared in workspace.yml)
    # The package that implements it: `<package>.DECLARING` reads its files,
    # `<package>.kind.KIND` plans and applies its resources.
    package: str
    # Azure ML's schema names (`…/commandJob.schema.json`) of its files, and of its parts'
    azure: Mapping[str, str] = field(default_factory=dict)
    parts: tuple[str, ...] = ()  # kinds declared in its folder that are parts of it
    resource: bool = True  # False: a library the resources use (components), not planned


# One line per kind. The order is the order the folders are read in, and so the order
# specs are listed in where nothing else orders them.
REGISTERED = (
    Registered("data", "data", "mlform.kinds.data"),
    Registered("environment", "environments", "mlform.kinds.environment"),
    Registered(
        "runconfig",
        "runconfigs",
        "mlform.kinds.runconfig",
        {"commandJob": "runconfig", "sweepJob": "runconfig", "autoMLJob": "runconfig"},
    ),
    Registered("pipeline", "pipelines", "mlform.kinds.pipeline", {"pipelineJob": "pipeline"}),
    Registered("model", "models", "mlform.kinds.model"),
    Registered("image", "images", "mlform.kinds.image"),
    Registered(
        "endpoint",
        "endpoints",
        "mlform.kinds.endpoint",
        {
            "managedOnlineEndpoint": "endpoint",
            "kubernetesOnlineEndpoint": "endpoint",
            "managedOnlineDeployment": "deployment",
            "kubernetesOnlineDeployment": "deployment",
        },
        parts=("deployment",),
    ),
    Registered(
        "compute",
        "compute",
        "mlform.kinds.compute",
        {"amlCompute": "compute", "computeInstance": "compute"},
    ),
    Registered("schedule", "schedules", "mlform.kinds.schedule", {"schedule": "schedule"}),
    Registered("monitor", "monitors", "mlform.kinds.monitor", {"monitorSchedule": "monitor"}),
    Registered("datastore", "", "mlform.kinds.datastore"),  # declared in workspace.yml
    Registered(
        "component",
        "components",
        "mlform.kinds.component",
        {"commandComponent": "component"},
        resource=False,
    ),
)
BY_NAME = {entry.name: entry for entry in REGISTERED}
FOLDERS = {entry.folder: entry.name for entry in REGISTERED if entry.folder}
RESOURCES = tuple(entry.name for entry in REGISTERED if entry.resource)
AZURE_SCHEMAS = {schema: kind for entry in REGISTERED for schema, kind in entry.azure.items()}


class Resolver(Protocol):
    """What a kind resolves its references with: the other declarations of the
    workspace. Each method reports a problem where the reference is written when it
    names nothing declared (unless that thing's own file is broken: its errors say so)."""

    root: Path

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

    def named(self, kind: str, name: str, source: Source, where: JsonPath, user: str) -> str | None:
        """The address of `kind/name` if declared; None, without a problem, for one of
        the kind's built-in names (`compute: local`); else a problem that says what
        `user` (runs, steps) can name."""

    def is_declared(self, address: str) -> bool:
        """Whether `address` is declared here and built."""

    def spec(self, address: str) -> Spec | None:
        """The spec declared at `address`, built (with its parts), if it is."""

    def producers(self, kind: str, name: str) -> Sequence[str]:
        """The addresses that make versions of `kind/name` (a model a runconfig
        registers), in the order they are declared."""

    def spec_in_file(self, kind: str, path: Path) -> Spec | None:
        """The spec of `kind` the file at `path` declares, if it declares one."""

    def library(self, kind: str) -> list[Spec]:
        """Every spec of a library kind (components) read so far, whole."""

    def library_file(self, kind: str, path: Path) -> Spec | None:
        """The spec of a library kind the file at `path` declares, read and checked once;
        None when it is too broken to use (its problems are reported)."""


S = TypeVar("S", bound=Spec)
Parser = Callable[[Mapping[str, Any], Source], Spec]


class Declaring(Protocol[S]):
    """What the loader asks of a kind. Only `parse` has no default."""

    name: str
    # Documents in the kind's folder that have key K declare a part of another kind:
    # K → (that kind, its parser). A deployment in a file of its own names its endpoint.
    parts: ClassVar[Mapping[str, tuple[str, Parser]]] = {}
    name_from_file: ClassVar[bool] = False  # a file without name: is named by its stem
    built_in: ClassVar[tuple[str, ...]] = ()  # names others may use without declaring them

    def secret_places(self, kind: str) -> tuple[tuple[str, ...], ...]:
        """Where a file of `kind` (the kind's own, or one of its parts') may reference a
        secret: paths of keys, `*` any one key, `**` anything below."""
        return ()

    def parse(self, body: Mapping[str, Any], source: Source) -> S:
        """The spec a validated document (or entry of one) declares."""
        ...

    def how_to_declare(self, name: str, folder: str) -> str:
        """What a problem about an unknown `name` of the kind tells the user to do."""
        return f"declare it in {folder}/{name}.yml"

    def claims(self, data: Any, folder: str) -> bool:
        """For a library kind: whether a document in another kind's folder is one of its
        own (a component beside the jobs that run it)."""
        return False

    def misfiled(self, doc: Document) -> Problem | None:
        """Why a document in the kind's folder cannot be read as a declaration of the
        kind, if it cannot (a conda file no environment names, a compute type mlform does
        not run)."""
        return None

    def parse_document(self, doc: Document, bad: frozenset[Where]) -> S | None:
        """For a library kind: the spec a document declares, its wrong parts left out;
        None when too little is right to build one."""
        return None

    def duplicate(self, spec: S, others: Iterable[S]) -> Problem | None:
        """For a library kind: why `spec` clashes with one read before, if it does."""
        return None

    def check(self, spec: S, root: Path, skip: Collection[str]) -> list[Problem]:
        """What is wrong with the files the spec names; `skip`: keys the schema rejected."""
        return []

    def defines(self, spec: Spec) -> Sequence[Spec]:
        """The environments and models the spec defines in place (anonymous ones)."""
        return ()

    def assemble(
        self, spec: S, parts: Sequence[Spec], unbuilt: set[str]
    ) -> tuple[S, list[Problem]]:
        """The spec with the parts declared in files of their own; what is wrong once it
        has all of them. `unbuilt`: names of parts too broken to build."""
        return spec, []

    def resolve(self, spec: S, refs: Resolver) -> S:
        """The spec with what it runs from other files filled in (a step's component)."""
        return spec

    def references(self, spec: S, refs: Resolver) -> list[str]:
        """The addresses the spec depends on, each resolved with `refs`."""
        return []

    def produces(self, spec: S) -> list[tuple[str, str, JsonPath]]:
        """What the spec makes versions of: (kind, name, where the name is written)."""
        return []

    def paths(self, spec: Spec) -> Iterable[Found]:
        """Each local path the spec names, for the check that it stays in the workspace."""
        return ()

    def secret_uses(self, spec: Spec) -> tuple[str, ...]:
        """The secrets the resource's processes get (`${{secrets.NAME}}` in them)."""
        return ()


def declaring(name: str) -> Declaring[Any]:
    """How files of kind `name` are read: its package's `DECLARING` (the package imported
    on first use; what plans and applies it, `<package>.kind`, only when planning)."""
    reader: Declaring[Any] = _package(BY_NAME[name].package).DECLARING
    return reader


@functools.cache  # asked once per spec: a dict lookup, not the import machinery
def _package(name: str) -> ModuleType:
    return importlib.import_module(name)


def reader_of(kind: str) -> Declaring[Any] | None:
    """The kind that reads files of `kind`: itself, or the kind it is a part of."""
    entry = next((e for e in REGISTERED if kind == e.name or kind in e.parts), None)
    return declaring(entry.name) if entry is not None else None


def of(spec: Spec) -> Declaring[Any]:
    """The kind that reads `spec`: its own, or the kind it is a part of."""
    return declaring(spec.part_of or spec.kind)
