"""Find a workspace, read every file in it, and check it as a whole.

`load` reports every problem at once (schema errors, missing files, duplicate names,
unknown references, cycles), each as `path:line:col: message`, or returns a `Config`.

A file with schema errors is still read for what it gets right: its wrong values are
left out, and the rest is built into a spec and checked like any other. So a user who
fixes every reported error does not meet a new batch on the next run. A reference to
something whose own file is broken is not reported: that file's errors say it already.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlform.config import components, schema, specs
from mlform.config.components import ComponentSpec
from mlform.config.containment import Boundary, check_paths
from mlform.config.kinds import BY_NAME, FOLDERS, Declaring, Parser, declaring
from mlform.config.listing import yaml_files
from mlform.config.names import name_problem
from mlform.config.refs import AssetRef, DatastorePath, Location, local_path
from mlform.config.schema import Where
from mlform.config.specs import (
    IMPLICIT_DATASTORE,
    Binding,
    DatastoreSpec,
    DeploymentSpec,
    EndpointSpec,
    PipelineSpec,
    RunconfigSpec,
    Source,
    Spec,
    StepSpec,
)
from mlform.config.unsupported import unsupported
from mlform.config.yamlfile import Document, JsonPath, read_document
from mlform.errors import ConfigInvalid, Problem, WorkspaceNotFound
from mlform.graph import find_cycles
from mlform.secrets import declared as declared_secrets
from mlform.secrets import references as secret_references
from mlform.secrets.vault import Vault

WORKSPACE_FILES = ("workspace.yml", "workspace.yaml")
DEFAULT_STATE = ".mlform/state.duckdb"

# Folders of Azure ML files that mlform does not run yet: each file is reported.
UNSUPPORTED_FOLDERS = {"schedules": "job schedules"}
# Command components live here, or beside the jobs and pipelines that run them. They are
# no resource of their own: a pipeline step runs one.
COMPONENT_FOLDER = "components"

_UNUSABLE: frozenset[Where] = frozenset({()})
_CONDA_KEYS = {"name", "channels", "dependencies", "prefix", "variables"}
_SCHEMA_NAME = re.compile(r"(?:^|/)(?P<kind>[A-Za-z]+)\.schema\.json$")
_AZURE_KINDS = {
    "commandJob": "runconfig",
    "commandComponent": "component",
    "pipelineJob": "pipeline",
    "managedOnlineEndpoint": "endpoint",
    "kubernetesOnlineEndpoint": "endpoint",
    "managedOnlineDeployment": "deployment",
    "kubernetesOnlineDeployment": "deployment",
    "amlCompute": "compute",
    "computeInstance": "compute",
}  # Azure ML's schema file names for mlform kinds
_NAME_LINE = re.compile(r"^name:[ \t]*[\"']?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)", re.MULTILINE)


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
    container_registry: str | None = None  # where built images are pushed
    vault: Vault = field(default_factory=lambda: Vault({}, Path(), Path()))

    def secret_uses(self) -> dict[str, tuple[str, ...]]:
        """Address → the secrets its processes get, for the resources that use any."""
        found = {a: secret_references.uses(s) for a, s in self.specs.items()}
        return {address: names for address, names in found.items() if names}

    def storage_options(self, store: DatastoreSpec) -> dict[str, Any]:
        """A datastore's storage_options with the values of the secrets they reference,
        for its client only."""
        options, _ = self.vault.resolve(dict(store.storage_options))
        return dict(options)

    def unresolved(self) -> list[Problem]:
        """A problem per secret the resources use that cannot be read here."""
        return self.vault.problems(self.secret_uses())

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
        self.broken: set[str] = set()  # addresses declared in files too broken to build
        self.stores_known = True  # False when some datastore entry could not be read
        # (kind, name) → what makes versions of it, and where it writes the name
        self.sources: dict[tuple[str, str], list[tuple[str, JsonPath]]] | None = None
        self.default = ""  # the default datastore's name, once the datastores are read
        self.deployments: list[DeploymentSpec] = []  # from files of their own
        self.components: dict[Path, ComponentSpec | None] = {}  # None: too broken to use
        self.checked: list[tuple[Document, str]] = []  # every document read, and its kind
        self.secrets: dict[str, declared_secrets.Secret] = {}

    def run(self) -> Config:
        path = self._workspace_file()
        ws, bad = self._read(path, path.name, "workspace")
        body = ws.data if isinstance(ws.data, dict) else {}
        name = body.get("name") if isinstance(body.get("name"), str) else self.root.name
        state = body.get("state") if isinstance(body.get("state"), str) else DEFAULT_STATE
        registry = body.get("container_registry")
        self.secrets, problems, broken = declared_secrets.parse(ws, bad, self.root)
        self.problems.extend(problems)
        known = {**dict.fromkeys(broken), **self.secrets}  # a broken one is reported already
        default = self._datastores(ws, bad)
        for folder, kind in FOLDERS.items():
            for doc, doc_kind, doc_bad in self._documents(folder, kind):
                self._build(doc, doc_kind, self._parser(kind, doc_kind), doc_bad)
        self._attach_deployments()
        for doc in self._component_documents():
            self._component(doc)
        self._resolve_components()
        self._stray_folders()
        self._unsupported_folders()
        self._check_containment()
        self.default = default
        deps = {address: self._dependencies(spec) for address, spec in self.specs.items()}
        self._check_productions()
        self._check_cycles(deps)
        for doc, kind in self.checked:
            self.problems.extend(secret_references.document_problems(doc, kind, known))
        state_path = (self.root / str(state)).resolve()
        vault = Vault(self.secrets, self.root, state_path.parent)
        if any(p.severity == "error" for p in self.problems):
            # every problem at once: those of the secrets the resources use too
            uses = {a: secret_references.uses(s) for a, s in self.specs.items()}
            self.problems.extend(vault.problems(uses))
        problems = sorted(dict.fromkeys(self.problems), key=_order)
        if any(p.severity == "error" for p in problems):
            raise ConfigInvalid(problems)
        return Config(
            self.root,
            str(name),
            state_path,
            default,
            self.specs,
            deps,
            problems,
            registry if isinstance(registry, str) else None,
            vault,
        )

    # -- reading -------------------------------------------------------------------------

    def _workspace_file(self) -> Path:
        for candidate in WORKSPACE_FILES:
            if (self.root / candidate).is_file():
                return self.root / candidate
        raise WorkspaceNotFound(f"no workspace.yml in {self.root}")

    def _read(self, path: Path, display: str, kind: str) -> tuple[Document, frozenset[Where]]:
        doc = read_document(path, display)
        return doc, self._check(doc, kind)

    def _check(self, doc: Document, kind: str) -> frozenset[Where]:
        """Record the document's problems; return the paths in it that must not be used."""
        self.problems.extend(doc.problems)
        if not doc.parsed:
            return _UNUSABLE
        self.checked.append((doc, kind))
        data = doc.data if isinstance(doc.data, dict) else {}
        todo = unsupported(doc, kind)
        if todo is not None:
            self.problems.append(todo)
            return _UNUSABLE
        misplaced = _misplaced(data.get("$schema"), kind)
        if misplaced:
            self.problems.append(doc.problem(["$schema"], misplaced))
            return _UNUSABLE
        if kind == "environment" and "dependencies" in data and data.keys() <= _CONDA_KEYS:
            self.problems.append(
                doc.problem(
                    [],
                    "this looks like a conda file (it has dependencies:), but no environment "
                    "names it; point one at it with conda_file: "
                    f"{doc.path.name}, or move it out of environments/",
                )
            )
            return _UNUSABLE
        found = schema.check(doc, kind)
        self.problems.extend(found.problems)
        return found.bad

    def _documents(self, folder: str, kind: str) -> list[tuple[Document, str, frozenset[Where]]]:
        base = self.root / folder
        if not base.is_dir():
            return []
        names, unreadable = yaml_files(base, folder)
        self.problems.extend(unreadable)
        docs = [read_document(base / name, f"{folder}/{name}") for name in names]
        # A conda file or a YAML data file next to the file that names it is not a
        # declaration of its own.
        named = _named_files(docs)
        parts = declaring(kind).parts
        found = []
        for doc in docs:
            if doc.path in named:
                continue
            if folder in ("runconfigs", "pipelines") and components.declares_component(
                doc.data, folder
            ):
                self._component(doc)
                continue
            data = doc.data if isinstance(doc.data, dict) else {}
            doc_kind = next((part for key, (part, _) in parts.items() if key in data), kind)
            found.append((doc, doc_kind, self._check(doc, doc_kind)))
        return found

    def _build(self, doc: Document, kind: str, parse: Parser, bad: frozenset[Where]) -> None:
        body = _usable(doc.data, (), bad)
        needed = [key for key in schema.required(kind) if key != "name"]
        if body is None or any(key not in body for key in needed):
            self.broken.add(f"{kind}/{_guess_name(doc)}")
            return
        if kind in ("runconfig", "pipeline") and "name" not in body:
            body = {**body, "name": doc.path.stem}  # Azure ML job files may leave it out
        named = "name" in body
        written = doc.data.get("name") if isinstance(doc.data, dict) else None
        problem = name_problem(written) if "name" in body and isinstance(written, str) else None
        if problem:
            # The schema's pattern ends in `$`, which Python lets match before a final
            # newline: the name rule itself is the judge.
            self.problems.append(doc.problem(["name"], f"name {problem}"))
            self.broken.add(f"{kind}/{written}")
            return
        if not named:
            # Still check its paths, under the name as written, but keep it out of the
            # workspace: references to it are judged by its own file's errors.
            body = {**body, "name": str(doc.data.get("name", ""))}
            self.broken.add(f"{kind}/{body['name']}")
        spec = parse(body, Source(doc))
        skip = {str(where[0]) for where in bad if where}
        self._add(spec, skip, register=named)

    def _add(self, spec: Spec, skip: set[str], *, register: bool = True) -> None:
        if register:
            self._add_anonymous(spec)
        if isinstance(spec, DeploymentSpec):
            if register:
                self.deployments.append(spec)
            self.problems.extend(self._checker(spec).check(spec, self.root, skip))
            return
        if isinstance(spec, EndpointSpec):
            for inline in spec.deployments:
                self.problems.extend(self._checker(inline).check(inline, self.root, set()))
        other = self.specs.get(spec.address)
        if register and other is not None:
            self.problems.append(
                spec.source.problem(
                    ["name"],
                    f"duplicate {spec.kind} name '{spec.name}': also declared at "
                    f"{_at(other, ['name'])}; rename one of them",
                )
            )
        elif register:
            self.specs[spec.address] = spec
        self.problems.extend(self._checker(spec).check(spec, self.root, skip))

    def _parser(self, kind: str, doc_kind: str) -> Parser:
        """How a document of `doc_kind` found in `kind`'s folder is built into a spec."""
        implementation = declaring(kind)
        if doc_kind == kind:
            return implementation.parse
        return next(parse for part, parse in implementation.parts.values() if part == doc_kind)

    def _checker(self, spec: Spec) -> Declaring[Any]:
        """The kind that checks `spec`: its own, or the kind it is a part of."""
        return declaring(spec.part_of or spec.kind)

    def _add_anonymous(self, spec: Spec) -> None:
        """Register the environments and models `spec` defines in place. One defined the
        same way in several places is one resource, checked once."""
        owners: list[Any] = [spec]
        if isinstance(spec, PipelineSpec):
            owners.extend(spec.steps)
        if isinstance(spec, EndpointSpec):
            owners.extend(spec.deployments)
        for owner in owners:
            for defined in getattr(owner, "inline", ()):
                if defined.address not in self.specs:
                    self.specs[defined.address] = defined
                    self.problems.extend(self._checker(defined).check(defined, self.root, set()))

    def _datastores(self, ws: Document, bad: frozenset[Where]) -> str:
        declared = ws.data.get("datastores") if isinstance(ws.data, dict) else None
        if not ws.parsed or (declared is not None and not isinstance(declared, list)):
            self.stores_known = False
        defaults: list[DatastoreSpec] = []
        for index, item in enumerate(declared if isinstance(declared, list) else []):
            where: Where = ("datastores", index)
            body = _usable(item, where, bad)
            if body is None or "name" not in body:
                self.stores_known = False
                continue
            store = specs.datastore(body, Source(ws, where), self.root)
            if store.default:
                defaults.append(store)
            self._add(store, {str(w[2]) for w in bad if w[:2] == where and len(w) > 2})
        for extra in defaults[1:]:
            self.problems.append(
                extra.source.problem(
                    ["default"],
                    f"datastores '{defaults[0].name}' and '{extra.name}' are both "
                    "default; mark only one with default: true",
                )
            )
        stores = [s for s in self.specs.values() if isinstance(s, DatastoreSpec)]
        if defaults:
            return defaults[0].name
        if len(stores) == 1:
            return stores[0].name
        if not any(s.name == IMPLICIT_DATASTORE for s in stores):
            implicit = specs.datastore({"name": IMPLICIT_DATASTORE}, Source(ws, ()), self.root)
            self.specs[implicit.address] = implicit
        return IMPLICIT_DATASTORE

    def _stray_folders(self) -> None:
        """Warn about YAML files in a folder whose name is a near miss of a kind folder."""
        for entry in os.scandir(self.root):
            if entry.name in (*FOLDERS, COMPONENT_FOLDER) or entry.name.startswith("."):
                continue
            if not entry.is_dir():
                continue
            close = difflib.get_close_matches(entry.name, list(FOLDERS), n=1, cutoff=0.8)
            if not close:
                continue
            try:
                files = sorted(
                    e.name for e in os.scandir(entry.path) if e.name.endswith((".yml", ".yaml"))
                )
            except OSError:
                continue
            if files:
                self.problems.append(
                    Problem(
                        f"{entry.name}/{files[0]}",
                        1,
                        1,
                        f"mlform does not read {entry.name}/ (did you mean {close[0]}/?); "
                        f"move its files to {close[0]}/ to declare them",
                        "warning",
                    )
                )

    def _check_containment(self) -> None:
        stores = [s for s in self.specs.values() if isinstance(s, DatastoreSpec)]
        components = [c for c in self.components.values() if c is not None]
        specs = [*self.specs.values(), *self.deployments, *components]
        self.problems.extend(check_paths(specs, Boundary.of(self.root, stores)))

    def _unsupported_folders(self) -> None:
        """Files in folders of kinds mlform does not run yet, one problem each."""
        for folder, what in UNSUPPORTED_FOLDERS.items():
            base = self.root / folder
            if not base.is_dir():
                continue
            names, unreadable = yaml_files(base, folder)
            self.problems.extend(unreadable)
            for name in names:
                doc = read_document(base / name, f"{folder}/{name}")
                self.problems.extend(doc.problems)
                found = unsupported(doc, folder, what) if doc.parsed else None
                self.problems.extend([found] if found else [])

    # -- references ----------------------------------------------------------------------

    def _dependencies(self, spec: Spec) -> tuple[str, ...]:
        deps = self._checker(spec).references(spec, self)
        for index, address in enumerate(spec.depends_on):
            if address in self.broken:
                continue  # its own file's problems are already reported
            if address not in self.specs:
                hint = self._similar(address, spec.address)
                self.problems.append(
                    spec.source.problem(
                        ["depends_on", index],
                        f"depends_on '{address}' is not declared in this workspace"
                        + (hint or "; correct it or remove the entry"),
                    )
                )
            elif address == spec.address:
                self.problems.append(
                    spec.source.problem(
                        ["depends_on", index],
                        "a resource cannot depend on itself; remove this entry",
                    )
                )
            else:
                deps.append(address)
        return tuple(dict.fromkeys(d for d in deps if d in self.specs))

    # -- the Resolver kinds resolve their references with ------------------------------

    def problem(self, problem: Problem) -> None:
        self.problems.append(problem)

    def declared(self, kind: str) -> list[str]:
        found = [a for a in [*self.specs, *self.broken] if a.startswith(f"{kind}/")]
        return sorted({a.partition("/")[2] for a in found})

    def is_declared(self, address: str) -> bool:
        return address in self.specs

    def datastore(self, location: Location, source: Source, where: JsonPath) -> str:
        store = self.default
        if isinstance(location, DatastorePath):
            store = location.datastore
            if f"datastore/{store}" not in self.specs and self.stores_known:
                self.problems.append(source.problem(where, self._no_store(store)))
        return f"datastore/{store}"

    def producers(self, kind: str, name: str) -> list[str]:
        return [address for address, _ in self._productions().get((kind, name), [])]

    def fits(self, kind: str, ref: AssetRef, source: Source) -> bool:
        """False, with a problem, when an Azure ML URI names an asset of another kind."""
        plural = "data" if kind == "data" else f"{kind}s"
        if ref.kind is None or ref.kind == plural:
            return True
        written = source.doc.text([*source.where, kind]) or str(ref)
        self.problems.append(
            source.problem(
                [kind],
                f"'{written}' names the {ref.kind.removesuffix('s')} '{ref.name}', not "
                f"{schema.with_article(kind)}; "
                f"write azureml://registries/<registry>/{plural}/NAME/versions/N",
            )
        )
        return False

    def asset(self, kind: str, ref: AssetRef, source: Source, where: JsonPath) -> str | None:
        """The address of the asset `ref` names, declared here; else None and a problem.
        A reference into an Azure ML registry resolves to the asset of that name here."""
        if list(where) == [kind] and not self.fits(kind, ref, source):
            return None
        address = f"{kind}/{ref.name}"
        if ref.registry is None or address in self.specs or address in self.broken:
            return self.reference(kind, ref.name, source, where)
        folder = _folder_of(kind)
        version = f", version: {ref.version}" if ref.version else ""
        self.problems.append(
            source.problem(
                where,
                f"{kind} '{ref.name}' (from Azure ML registry '{ref.registry}') is not "
                f"declared in this workspace, and mlform does not fetch from registries; "
                f"declare it in {folder}/{ref.name}.yml (name: {ref.name}{version})",
            )
        )
        return None

    def reference(self, kind: str, name: str, source: Source, where: JsonPath) -> str | None:
        """The address of `kind/name` if it is declared; else None, and the problem said
        where the reference is written (unless that resource's own file is broken)."""
        address = f"{kind}/{name}"
        if address in self.specs:
            return address
        if address not in self.broken:
            known = sorted(s.name for s in self.specs.values() if s.kind == kind)
            hint = schema.did_you_mean(name, known) or (
                f" (declared: {', '.join(known)})" if known else ""
            )
            folder = _folder_of(kind)
            self.problems.append(
                source.problem(where, f"unknown {kind} '{name}'{hint}; declare it in {folder}/")
            )
        return None

    def _attach_deployments(self) -> None:
        """Give each endpoint the deployments declared in files of their own, and check
        names and traffic once an endpoint has all of them."""
        for dep in self.deployments:
            owner = self.specs.get(f"endpoint/{dep.endpoint}")
            if isinstance(owner, EndpointSpec):
                self.specs[owner.address] = replace(owner, deployments=(*owner.deployments, dep))
            else:
                self.reference("endpoint", dep.endpoint, dep.source, ["endpoint_name"])
        for spec in list(self.specs.values()):
            if isinstance(spec, EndpointSpec):
                broken = {a.partition("/")[2] for a in self.broken if a.startswith("deployment/")}
                self.problems.extend(_endpoint_problems(spec, broken | _written_deployments(spec)))

    def _component_documents(self) -> list[Document]:
        base = self.root / COMPONENT_FOLDER
        if not base.is_dir():
            return []
        names, unreadable = yaml_files(base, COMPONENT_FOLDER)
        self.problems.extend(unreadable)
        docs = [read_document(base / n, f"{COMPONENT_FOLDER}/{n}") for n in names]
        named = _named_files(docs)  # a conda file beside the component that names it
        return [doc for doc in docs if doc.path not in named]

    def _component(self, doc: Document) -> ComponentSpec | None:
        """The component a file declares, read and checked once however many steps run it."""
        path = doc.path.resolve()
        if path in self.components:
            return self.components[path]
        bad = self._check(doc, "component")
        # A wrong input or output leaves out only itself: the others are still checked.
        entries = {w for w in bad if len(w) > 2 and w[0] in ("inputs", "outputs")}
        body = _usable(doc.data, (), bad - entries)
        for group, name in {(str(w[0]), w[1]) for w in entries}:
            kept = body.get(group) if body is not None else None
            if body is not None and isinstance(kept, dict):
                body = {**body, group: {k: v for k, v in kept.items() if k != name}}
        found = None
        if body is not None and "command" in body:
            found = components.parse(body, Source(doc))
            self.problems.extend(components.check(found))
            for other in self.components.values():
                if other is not None and (other.name, other.version) == (found.name, found.version):
                    self.problems.append(
                        found.source.problem(
                            ["version" if found.version else "name"],
                            f"component {found} is also declared at {other.source}; give one "
                            "of them another version",
                        )
                    )
        self.components[path] = found
        return found

    def _resolve_components(self) -> None:
        """Steps that run a component (or a runconfig file) take its command, code,
        environment, inputs and outputs, with what the step says over them."""
        by_file = {
            s.source.doc.path.resolve(): s
            for s in self.specs.values()
            if isinstance(s, RunconfigSpec)
        }
        for address, spec in list(self.specs.items()):
            if not isinstance(spec, PipelineSpec):
                continue
            steps = []
            for step in spec.steps:
                if step.component is None and "component" not in step.body:
                    steps.append(step)
                    continue
                if isinstance(step.component, Path) and step.component.resolve() in by_file:
                    steps.append(_merged(step, by_file[step.component.resolve()]))
                    continue
                component = self._step_component(step)
                if component is None:
                    steps.append(step)
                    continue
                merged, problems = components.bind(step, component, spec)
                self.problems.extend(problems)
                steps.append(merged)
            merged_spec = replace(spec, steps=tuple(steps))
            self.specs[address] = merged_spec
            self._add_anonymous(merged_spec)  # environments its components define in place
            self.problems.extend(_pipeline_problems(merged_spec))

    def _step_component(self, step: StepSpec) -> ComponentSpec | None:
        """The component a step names, or None and the problem said (unless the
        component's own file is too broken to use: its errors say so)."""
        written = step.body.get("component")
        ref = step.component
        if isinstance(ref, AssetRef):
            return self._named_component(step, ref)
        if not isinstance(ref, Path):
            self.problems.append(
                step.source.problem(
                    ["component"],
                    f"component '{written}' is neither a file (./train.yml) nor a component "
                    "reference (azureml:NAME:VERSION, azureml:NAME@latest or "
                    "azureml://registries/<registry>/components/NAME/versions/N)",
                )
            )
            return None
        resolved = ref.resolve()
        if resolved in self.components:
            return self.components[resolved]
        if not os.path.isfile(ref):
            self.problems.append(
                step.source.problem(
                    ["component"],
                    f"component file '{written}' does not exist; the path is relative to "
                    f"{step.source.file}",
                )
            )
            return None
        return self._component(read_document(ref, _display(ref, self.root)))

    def _named_component(self, step: StepSpec, ref: AssetRef) -> ComponentSpec | None:
        """The component `ref` names, declared here. A reference into an Azure ML registry
        resolves to the component of that name and version here, or says how to declare it."""
        if not self.fits("component", ref, step.source):
            return None
        named = [c for c in self.components.values() if c is not None and c.name == ref.name]
        if ref.version is not None:
            named = [c for c in named if c.version == ref.version]
        if named:
            return max(named, key=lambda c: _version_key(c.version))
        if ref.registry is not None:
            version = f", version: {ref.version}" if ref.version else ""
            self.problems.append(
                step.source.problem(
                    ["component"],
                    f"component '{ref.name}'{f' version {ref.version}' if ref.version else ''} "
                    f"(from Azure ML registry '{ref.registry}') is not declared in this "
                    "workspace, and mlform does not fetch from registries; declare it in "
                    f"{COMPONENT_FOLDER}/{ref.name}.yml (name: {ref.name}{version})",
                )
            )
            return None
        if ref.name in {c.name for c in self.components.values() if c is not None}:
            versions = sorted(
                str(c.version)
                for c in self.components.values()
                if c is not None and c.name == ref.name
            )
            hint = f" (versions: {', '.join(versions)})"
        else:
            known = sorted({c.name for c in self.components.values() if c is not None})
            hint = schema.did_you_mean(ref.name, known) or (
                f" (declared: {', '.join(known)})" if known else ""
            )
        self.problems.append(
            step.source.problem(
                ["component"],
                f"unknown component '{step.body.get('component')}'{hint}; declare it in "
                f"{COMPONENT_FOLDER}/ or point at its file (./{ref.name}.yml)",
            )
        )
        return None

    def _productions(self) -> dict[tuple[str, str], list[tuple[str, JsonPath]]]:
        """(kind, name) → the addresses in this workspace that make versions of it (a
        model that a models/ file declares or a runconfig registers), each with where it
        writes the name."""
        if self.sources is not None:
            return self.sources
        sources: dict[tuple[str, str], list[tuple[str, JsonPath]]] = {}
        self.sources = sources
        for address, spec in self.specs.items():
            for kind, name, where in self._checker(spec).produces(spec):
                sources.setdefault((kind, name), []).append((address, where))
        return sources

    def _check_productions(self) -> None:
        """One source per name, so versions are numbered in one place per apply."""
        for (kind, name), made in self._productions().items():
            (first, first_at), *others = ((self.specs[a], where) for a, where in made)
            for other, where in others:
                self.problems.append(
                    other.source.problem(
                        where,
                        f"{kind} '{name}' is also registered by {first.address} "
                        f"({_at(first, first_at)}); give one of them another {kind} name",
                    )
                )

    def _similar(self, address: str, own: str) -> str:
        """A did-you-mean for an unknown address: a close name of the same kind, else
        the same name under a close kind (`dataset/iris` → `data/iris`)."""
        kind, _, name = address.partition("/")
        names = [s.name for a, s in self.specs.items() if s.kind == kind and a != own]
        close = schema.closest(name, names)
        if close is not None:
            return f" (did you mean '{kind}/{close}'?)"
        same = [a for a, s in self.specs.items() if s.name == name and a != own]
        return schema.did_you_mean(address, same)

    def _no_store(self, store: str) -> str:
        known = sorted(s.name for s in self.specs.values() if isinstance(s, DatastoreSpec))
        hint = schema.did_you_mean(store, known) or f" (declared: {', '.join(known)})"
        return f"unknown datastore '{store}'{hint}; declare it under datastores: in workspace.yml"

    def _check_cycles(self, deps: dict[str, tuple[str, ...]]) -> None:
        for cycle in find_cycles(deps):
            text = " → ".join(cycle)
            entries = []
            for address, nxt in itertools.pairwise(cycle):
                spec = self.specs[address]
                where: list[str | int] = ["depends_on"]
                if nxt in spec.depends_on:
                    where.append(spec.depends_on.index(nxt))
                entries.append((spec, where))
            (first, where), others = entries[0], entries[1:]
            elsewhere = ", ".join(_at(spec, at) for spec, at in others)
            self.problems.append(
                first.source.problem(
                    where,
                    f"dependency cycle: {text}; remove this depends_on entry"
                    + (f" or the one at {elsewhere}" if elsewhere else ""),
                )
            )


def _merged(step: StepSpec, base: RunconfigSpec) -> StepSpec:
    """A step over the runconfig it names: the step's own keys win."""
    body = step.body
    return replace(
        step,
        command=step.command or base.command,
        code=step.code if "code" in body else base.code,
        environment=step.environment if "environment" in body else base.environment,
        inputs={**base.inputs, **step.inputs},
        outputs={**base.outputs, **step.outputs},
        variables={**base.variables, **step.variables},
        timeout=step.timeout if step.timeout is not None else base.timeout,
        # what a runconfig registers when it runs as itself is not the step's to register
        register_model=step.register_model,
    )


def _pipeline_problems(spec: PipelineSpec) -> list[Problem]:
    """Bindings that name no step, output or input, commands that use undeclared inputs,
    and cycles — each where it is written."""
    problems: list[Problem] = []
    steps = {s.name: s for s in spec.steps}
    for step in spec.steps:
        if not step.command and "component" not in step.body:  # else: said where resolved
            problems.append(
                step.source.problem([], "a step needs a command (or a component: runconfig)")
            )
        for key, value in step.inputs.items():
            if not isinstance(value, Binding):
                continue
            where = ["inputs", key]
            if value.step is None:
                if value.name not in spec.inputs:
                    known = ", ".join(sorted(spec.inputs)) or "none"
                    problems.append(
                        step.source.problem(
                            where,
                            f"{value} names no input of the pipeline (inputs: {known}); "
                            "declare it under the pipeline's inputs:",
                        )
                    )
                continue
            upstream = steps.get(value.step)
            if upstream is None:
                hint = schema.did_you_mean(value.step, list(steps)) or (
                    f" (steps: {', '.join(steps)})"
                )
                problems.append(
                    step.source.problem(where, f"{value} names no step '{value.step}'{hint}")
                )
            elif value.name not in upstream.outputs:
                known = ", ".join(sorted(upstream.outputs)) or "none"
                problems.append(
                    step.source.problem(
                        where,
                        f"{value}: step {value.step} has no output '{value.name}' "
                        f"(outputs: {known}); declare it under its outputs:",
                    )
                )
        for match in _COMMAND_BINDING.finditer("" if step.origin else step.command):
            group, name = match[1], match[2]
            declared = {"inputs": step.inputs, "outputs": step.outputs}.get(group)
            if declared is not None and name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                problems.append(
                    step.source.problem(
                        ["command"],
                        f"command uses {match[0]}, but step {step.name} declares no "
                        f"{group[:-1]} '{name}' ({group}: {known})",
                    )
                )
        if step.code is not None and not os.path.isdir(step.code) and "code" in step.body:
            problems.append(
                step.source.problem(
                    ["code"], f"code folder '{step.body.get('code')}' does not exist"
                )
            )
    problems.extend(_published_outputs(spec))
    graph = {s.name: tuple(u for u in s.upstream if u in steps) for s in spec.steps}
    for cycle in find_cycles(graph):
        first = steps[cycle[0]]
        problems.append(
            first.source.problem(
                ["inputs"], f"steps bind each other's outputs in a cycle: {' → '.join(cycle)}"
            )
        )
    return problems


def _published_outputs(spec: PipelineSpec) -> list[Problem]:
    """Each `${{parent.outputs.x}}` names an output the pipeline declares, once."""
    problems: list[Problem] = []
    publisher: dict[str, tuple[str, str]] = {}
    for step in spec.steps:
        for output, name in step.parent_outputs.items():
            where = ["outputs", output]
            if name not in spec.outputs:
                known = ", ".join(sorted(spec.outputs)) or "none"
                problems.append(
                    step.source.problem(
                        where,
                        f"${{{{parent.outputs.{name}}}}} names no output of the pipeline "
                        f"(outputs: {known}); declare it under the pipeline's outputs:",
                    )
                )
            elif name in publisher:
                problems.append(
                    step.source.problem(
                        where,
                        f"pipeline output '{name}' is already bound to step "
                        f"{publisher[name][0]}'s output {publisher[name][1]}; bind each "
                        "pipeline output once",
                    )
                )
            else:
                publisher[name] = (step.name, output)
    return problems


_COMMAND_BINDING = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_.-]+)\s*\}\}")


def _written_deployments(spec: EndpointSpec) -> set[str]:
    """Names of the deployments the endpoint's file lists, those the schema rejected too."""
    data = spec.source.doc.data
    for step in spec.source.where:
        data = data.get(step) if isinstance(data, dict) else None
    listed = data.get("deployments") if isinstance(data, dict) else None
    items = listed if isinstance(listed, list) else []
    return {str(item["name"]) for item in items if isinstance(item, dict) and "name" in item}


def _endpoint_problems(spec: EndpointSpec, unbuilt: set[str]) -> list[Problem]:
    """Names and traffic; `unbuilt` are deployments whose own errors are reported, so
    traffic naming one of them is not a second error."""
    problems = []
    seen: dict[str, DeploymentSpec] = {}
    for dep in spec.deployments:
        if dep.name in seen:
            problems.append(
                dep.source.problem(
                    ["name"],
                    f"endpoint {spec.name} already has a deployment '{dep.name}' "
                    f"({_at(seen[dep.name], ['name'])}); rename one of them",
                )
            )
        seen[dep.name] = dep
    for name in spec.traffic:
        if name not in seen and name not in unbuilt:
            known = ", ".join(sorted(seen)) or "none"
            problems.append(
                spec.source.problem(
                    ["traffic", name],
                    f"traffic names deployment '{name}', which endpoint {spec.name} does not "
                    f"have (deployments: {known})",
                    key=True,
                )
            )
    total = sum(spec.traffic.values())
    if spec.traffic and total not in (0, 100):
        problems.append(
            spec.source.problem(
                ["traffic"],
                f"traffic adds up to {total}; the percentages must add up to 100 (or all be 0)",
            )
        )
    return problems


def _folder_of(kind: str) -> str:
    """The folder whose files declare `kind`."""
    return BY_NAME[kind].folder if kind in BY_NAME else kind


def _usable(value: Any, where: Where, bad: frozenset[Where]) -> dict[str, Any] | None:
    """The mapping at `where` without its wrong keys; None if the mapping itself is wrong."""
    if not isinstance(value, dict):
        return None
    if not bad:
        return value
    if any(where[:depth] in bad for depth in range(len(where) + 1)):
        return None
    depth = len(where)
    drop = {b[depth] for b in bad if len(b) > depth and b[:depth] == where}
    return {key: item for key, item in value.items() if key not in drop}


def _named_files(docs: list[Document]) -> set[Path]:
    """The YAML files that these documents point at with path, conda_file or requirements,
    theirs or those of an environment or model they define in place."""
    named = set()
    for doc in docs:
        for mapping in _definitions(doc.data):
            for key in ("path", "conda_file", "requirements"):
                value = mapping.get(key)
                if isinstance(value, str) and value.endswith((".yml", ".yaml")):
                    named.add(local_path(doc.path.parent, value))
    return named


def _definitions(data: Any) -> list[dict[str, Any]]:
    """A document's mapping, and those it defines in place: `environment:`, `model:`,
    `settings.default_environment:`, in itself and in its pipeline steps."""
    if not isinstance(data, dict):
        return []
    found = [data]
    settings = data.get("settings")
    places = [data, settings if isinstance(settings, dict) else {}]
    jobs = data.get("jobs")
    places.extend(jobs.values() if isinstance(jobs, dict) else ())
    for place in places:
        if isinstance(place, dict):
            for key in ("environment", "model", "default_environment"):
                if isinstance(place.get(key), dict):
                    found.append(place[key])
    return found


def _misplaced(declared: Any, kind: str) -> str | None:
    """Why a file whose `$schema` names another kind is in the wrong place, if it is."""
    match = _SCHEMA_NAME.search(declared) if isinstance(declared, str) else None
    other = _AZURE_KINDS.get(match["kind"], match["kind"]) if match else kind
    if other == kind:
        return None
    places = {"workspace": "workspace.yml"} | {k: f"{f}/" for f, k in FOLDERS.items()}
    places["deployment"] = places["endpoint"]  # Azure ML keeps them beside their endpoints
    places["component"] = f"{COMPONENT_FOLDER}/"
    if other not in places:
        return None  # a kind mlform does not read: the schema check says what is wrong
    here = places.get(kind, kind)
    return (
        f"$schema says this is {schema.with_article(other)} file, but {here} holds "
        f"{kind} declarations; move it to {places[other]} or correct $schema"
    )


def _guess_name(doc: Document) -> str:
    """The name a broken file declares, read from its text; else the file's stem."""
    if isinstance(doc.data, dict) and isinstance(doc.data.get("name"), str):
        return str(doc.data["name"])
    try:
        match = _NAME_LINE.search(doc.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        match = None
    return match["name"] if match else doc.path.stem


def _display(path: Path, root: Path) -> str:
    """How problems name a file: relative to the workspace when inside it."""
    return (
        os.path.relpath(path, root) if path.resolve().is_relative_to(root.resolve()) else str(path)
    )


def _version_key(version: str | None) -> tuple[int, int, str]:
    """Latest first by number when versions are numbers, as Azure ML numbers them."""
    if version is None:
        return (0, 0, "")
    return (1, int(version), "") if version.isdigit() else (1, -1, version)


def _at(spec: Spec, where: JsonPath) -> str:
    line, col = spec.source.doc.locate([*spec.source.where, *where])
    return f"{spec.source.file}:{line}:{col}"


def _order(problem: Problem) -> tuple[str, int, int]:
    return (problem.path, problem.line, problem.col)
