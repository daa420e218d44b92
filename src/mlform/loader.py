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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlform.config import agentpolicy, alertsettings, schema, specs
from mlform.config.agentpolicy import AgentPolicy
from mlform.config.alertsettings import SmtpSettings
from mlform.config.containment import Boundary, check_paths
from mlform.config.kinds import (
    AZURE_SCHEMAS,
    BY_NAME,
    FOLDERS,
    REGISTERED,
    Declaring,
    declaring,
    of,
    reader_of,
)
from mlform.config.listing import yaml_files
from mlform.config.names import name_problem
from mlform.config.refs import AssetRef, DatastorePath, Location, local_path
from mlform.config.schema import usable
from mlform.config.specs import IMPLICIT_DATASTORE, DatastoreSpec, Source, Spec
from mlform.config.unsupported import unsupported
from mlform.config.yamlfile import Document, JsonPath, Where, read_document
from mlform.errors import ConfigInvalid, Problem, WorkspaceNotFound
from mlform.graph import find_cycles
from mlform.private import HOME
from mlform.secrets import declared as declared_secrets
from mlform.secrets import references as secret_references
from mlform.secrets.vault import Vault
from mlform.state import backends
from mlform.state.backends import RemoteSpec

WORKSPACE_FILES = ("workspace.yml", "workspace.yaml")
DEFAULT_STATE = ".mlform/state.duckdb"

# Folders of Azure ML files that mlform does not run yet: each file is reported.
UNSUPPORTED_FOLDERS: dict[str, str] = {}
LIBRARIES = tuple(e.name for e in REGISTERED if not e.resource)
_RESOURCE_FOLDERS = [e.folder for e in REGISTERED if e.resource and e.folder]

_UNUSABLE: frozenset[Where] = frozenset({()})
_SCHEMA_NAME = re.compile(r"(?:^|/)(?P<kind>[A-Za-z]+)\.schema\.json$")
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
    # A remote state (`state:` a backend or URL); `state_path` is then this machine's copy.
    remote_state: RemoteSpec | None = None
    agent: AgentPolicy = field(default_factory=AgentPolicy)
    smtp: SmtpSettings | None = None  # the mail server of monitors' alert emails

    @property
    def home(self) -> Path:
        """The folder of what stays on this machine: caches, logs, secrets' keys, and
        the state itself when it is local."""
        if self.remote_state is not None:
            return self.root / HOME
        return self.state_path.parent

    def secret_uses(self) -> dict[str, tuple[str, ...]]:
        """Address → the secrets its processes get, for the resources that use any."""
        found = {a: of(s).secret_uses(s) for a, s in self.specs.items()}
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
        self.parts: list[Spec] = []  # parts declared in files of their own (deployments)
        # library kind → file → the spec it declares (None: too broken to use)
        self.libraries: dict[str, dict[Path, Spec | None]] = {}
        self.by_file: dict[tuple[str, Path], Spec] | None = None  # once every file is read
        self.checked: list[tuple[Document, str]] = []  # every document read, and its kind
        self.secrets: dict[str, declared_secrets.Secret] = {}

    def run(self) -> Config:
        path = self._workspace_file()
        ws, bad = self._read(path, path.name, "workspace")
        body = ws.data if isinstance(ws.data, dict) else {}
        name = body.get("name") if isinstance(body.get("name"), str) else self.root.name
        state, remote = self._state(ws, body)
        agent, problems = agentpolicy.parse(ws, body)
        self.problems.extend(problems)
        broken_alerts = any(b[:1] in ((), ("alerts",)) for b in bad)
        smtp = None if broken_alerts else alertsettings.parse(body)
        registry = body.get("container_registry")
        self.secrets, problems, broken = declared_secrets.parse(ws, bad, self.root)
        self.problems.extend(problems)
        known = {**dict.fromkeys(broken), **self.secrets}  # a broken one is reported already
        default = self._datastores(ws, bad)
        for entry in REGISTERED:
            if not (entry.resource and entry.folder and (self.root / entry.folder).is_dir()):
                continue  # libraries come once the resources are read; datastores were above
            reader = declaring(entry.name)
            for doc, doc_kind, doc_bad in self._documents(entry.folder, entry.name):
                self._build(doc, doc_kind, reader, doc_bad)
        self._assemble()
        for kind in LIBRARIES:
            self._library_documents(kind)
        self._resolve()
        self._stray_folders()
        self._unsupported_folders()
        self._check_containment()
        self.default = default
        deps = {address: self._dependencies(spec) for address, spec in self.specs.items()}
        self._check_productions()
        self._check_cycles(deps)
        for doc, kind in self.checked:
            owner = reader_of(kind)
            places = owner.secret_places(kind) if owner else secret_references.WORKSPACE
            self.problems.extend(secret_references.document_problems(doc, places, known))
        if remote is not None:
            state_path = self.root / HOME / "remote" / remote.slug / "state.duckdb"
        else:
            state_path = (self.root / state).resolve()
        home = self.root / HOME if remote is not None else state_path.parent
        vault = Vault(self.secrets, self.root, home)
        if any(p.severity == "error" for p in self.problems):
            # every problem at once: those of the secrets the resources use too
            uses = {a: of(s).secret_uses(s) for a, s in self.specs.items()}
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
            remote,
            agent,
            smtp,
        )

    # -- reading -------------------------------------------------------------------------

    def _workspace_file(self) -> Path:
        for candidate in WORKSPACE_FILES:
            if (self.root / candidate).is_file():
                return self.root / candidate
        raise WorkspaceNotFound(f"no workspace.yml in {self.root}")

    def _state(self, ws: Document, body: dict[str, Any]) -> tuple[str, RemoteSpec | None]:
        """`state:` as a local path (relative to the root) or a remote state's address."""
        try:
            found = backends.parse(body.get("state"))
        except backends.BadState as err:
            self.problems.append(ws.problem(["state", *err.where], str(err)))
            return DEFAULT_STATE, None
        if isinstance(found, RemoteSpec):
            return DEFAULT_STATE, found
        return found or DEFAULT_STATE, None

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
        if kind != "schedule" and isinstance(data.get("trigger"), dict) and "create_job" in data:
            self.problems.append(
                doc.problem(
                    ["create_job"],
                    f"this file is a schedule (it has trigger: and create_job:), but "
                    f"{_folder(kind)} holds {kind} declarations; move it to "
                    "schedules/",
                    key=True,
                )
            )
            return _UNUSABLE
        misfiled = declaring(kind).misfiled(doc) if kind in BY_NAME else None
        if misfiled:
            self.problems.append(misfiled)
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
            library = next((k for k in LIBRARIES if declaring(k).claims(doc.data, folder)), None)
            if library is not None:  # a component beside the jobs that run it
                self._library_document(library, doc)
                continue
            data = doc.data if isinstance(doc.data, dict) else {}
            doc_kind = next((part for key, (part, _) in parts.items() if key in data), kind)
            found.append((doc, doc_kind, self._check(doc, doc_kind)))
        return found

    def _build(
        self, doc: Document, kind: str, reader: Declaring[Any], bad: frozenset[Where]
    ) -> None:
        """Build the spec of `kind` a document in `reader`'s folder declares (`kind` is
        the reader's own, or one of its parts)."""
        body = usable(doc.data, (), bad)
        needed = [key for key in schema.required(kind, body) if key != "name"]
        if body is None or any(key not in body for key in needed):
            self.broken.add(f"{kind}/{_guess_name(doc)}")
            return
        if reader.name_from_file and kind == reader.name and "name" not in body:
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
        if kind == reader.name:
            spec = reader.parse(body, Source(doc))
        else:
            spec = next(parse for part, parse in reader.parts.values() if part == kind)(
                body, Source(doc)
            )
        skip = {str(where[0]) for where in bad if where}
        self._add(spec, skip, register=named)

    def _add(self, spec: Spec, skip: set[str], *, register: bool = True) -> None:
        if register:
            self._add_anonymous(spec)
        problems = of(spec).check(spec, self.root, skip)
        if spec.owner is not None:  # a part, in a file of its own: its owner gets it
            if register:
                self.parts.append(spec)
            self.problems.extend(problems)
            return
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
        self.problems.extend(problems)

    def _add_anonymous(self, spec: Spec) -> None:
        """Register the environments and models `spec` defines in place. One defined the
        same way in several places is one resource, checked once."""
        for defined in of(spec).defines(spec):
            if defined.address not in self.specs:
                self.specs[defined.address] = defined
                self.problems.extend(of(defined).check(defined, self.root, set()))

    def _datastores(self, ws: Document, bad: frozenset[Where]) -> str:
        declared = ws.data.get("datastores") if isinstance(ws.data, dict) else None
        if not ws.parsed or (declared is not None and not isinstance(declared, list)):
            self.stores_known = False
        defaults: list[DatastoreSpec] = []
        for index, item in enumerate(declared if isinstance(declared, list) else []):
            where: Where = ("datastores", index)
            body = usable(item, where, bad)
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
            if entry.name in FOLDERS or entry.name.startswith("."):
                continue
            if not entry.is_dir():
                continue
            close = difflib.get_close_matches(entry.name, _RESOURCE_FOLDERS, n=1, cutoff=0.8)
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
        read = [*self.specs.values(), *self.parts]
        read.extend(s for files in self.libraries.values() for s in files.values() if s)
        paths = [found for spec in read for found in of(spec).paths(spec)]
        self.problems.extend(check_paths(paths, Boundary.of(self.root, stores)))

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
        deps = of(spec).references(spec, self)
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

    def spec(self, address: str) -> Spec | None:
        return self.specs.get(address)

    def named(self, kind: str, name: str, source: Source, where: JsonPath, user: str) -> str | None:
        address = f"{kind}/{name}"
        if address in self.specs:
            return address
        reader = declaring(kind)
        declared = self.declared(kind)
        if name in reader.built_in or name in declared:
            return None  # built in, or declared in a file too broken to build
        known = sorted({*reader.built_in, *declared})
        hint = schema.did_you_mean(name, known) or f" ({user} can use: {', '.join(known)})"
        todo = reader.how_to_declare(name, _folder_of(kind))
        self.problems.append(source.problem(where, f"unknown {kind} '{name}'{hint}; {todo}"))
        return None

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

    def _assemble(self) -> None:
        """Give each resource the parts declared in files of their own (an endpoint its
        deployments), and check it once it has all of them."""
        owned: dict[str, list[Spec]] = {}
        for part in self.parts:
            assert part.part_of is not None and part.owner is not None
            name, where = part.owner
            address = f"{part.part_of}/{name}"
            if address in self.specs:
                owned.setdefault(address, []).append(part)
            else:
                self.reference(part.part_of, name, part.source, where)
        for entry in REGISTERED:
            if not entry.parts:
                continue
            unbuilt = {
                address.partition("/")[2]
                for address in self.broken
                if address.partition("/")[0] in entry.parts
            }
            for address, spec in list(self.specs.items()):
                if spec.kind == entry.name:
                    whole, problems = declaring(entry.name).assemble(
                        spec, owned.get(address, []), unbuilt
                    )
                    self.specs[address] = whole
                    self.problems.extend(problems)

    def _library_documents(self, kind: str) -> None:
        """Read the folder of a library kind (components/)."""
        folder = BY_NAME[kind].folder
        base = self.root / folder
        if not base.is_dir():
            return
        names, unreadable = yaml_files(base, folder)
        self.problems.extend(unreadable)
        docs = [read_document(base / n, f"{folder}/{n}") for n in names]
        named = _named_files(docs)  # a conda file beside the component that names it
        for doc in docs:
            if doc.path not in named:
                self._library_document(kind, doc)

    def _library_document(self, kind: str, doc: Document) -> Spec | None:
        """The spec of a library kind a file declares, read and checked once however
        many resources use it."""
        path = doc.path.resolve()
        files = self.libraries.setdefault(kind, {})
        if path in files:
            return files[path]
        reader = declaring(kind)
        found = reader.parse_document(doc, self._check(doc, kind))
        if found is not None:
            self.problems.extend(reader.check(found, self.root, set()))
            clash = reader.duplicate(found, [s for s in files.values() if s is not None])
            self.problems.extend([clash] if clash else [])
        files[path] = found
        return found

    def _resolve(self) -> None:
        """Each spec with what it runs from other files filled in (a pipeline step's
        component), then what it defines there registered."""
        for address, spec in list(self.specs.items()):
            resolved = of(spec).resolve(spec, self)
            if resolved is not spec:
                self.specs[address] = resolved
                self._add_anonymous(resolved)  # environments its components define in place

    def spec_in_file(self, kind: str, path: Path) -> Spec | None:
        if self.by_file is None:
            self.by_file = {(s.kind, s.source.doc.path.resolve()): s for s in self.specs.values()}
        return self.by_file.get((kind, path.resolve()))

    def library(self, kind: str) -> list[Spec]:
        return [s for s in self.libraries.get(kind, {}).values() if s is not None]

    def library_file(self, kind: str, path: Path) -> Spec | None:
        known = self.libraries.get(kind, {})
        if path.resolve() in known:
            return known[path.resolve()]
        return self._library_document(kind, read_document(path, _display(path, self.root)))

    def _productions(self) -> dict[tuple[str, str], list[tuple[str, JsonPath]]]:
        """(kind, name) → the addresses in this workspace that make versions of it (a
        model that a models/ file declares or a runconfig registers), each with where it
        writes the name."""
        if self.sources is not None:
            return self.sources
        sources: dict[tuple[str, str], list[tuple[str, JsonPath]]] = {}
        self.sources = sources
        for address, spec in self.specs.items():
            for kind, name, where in of(spec).produces(spec):
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


def _folder_of(kind: str) -> str:
    """The folder whose files declare `kind`."""
    owner = next((e for e in REGISTERED if kind == e.name or kind in e.parts), None)
    return owner.folder if owner is not None else kind


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
    other = AZURE_SCHEMAS.get(match["kind"], match["kind"]) if match else kind
    if other == kind:
        return None
    places = {"workspace": "workspace.yml"} | {k: f"{f}/" for f, k in FOLDERS.items()}
    places |= {part: f"{e.folder}/" for e in REGISTERED for part in e.parts}
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


def _at(spec: Spec, where: JsonPath) -> str:
    return spec.source.at(where)


def _order(problem: Problem) -> tuple[str, int, int]:
    return (problem.path, problem.line, problem.col)


def _folder(kind: str) -> str:
    """Where files of `kind` are: `runconfigs/`, or workspace.yml."""
    entry = BY_NAME.get(kind)
    return f"{entry.folder}/" if entry is not None and entry.folder else "workspace.yml"
