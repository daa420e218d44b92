"""Model versions: registering, finding, tagging, archiving, deleting and downloading.

Versions number per name, whatever registers them (a run, a models/ file, the CLI), and
the same files are never registered twice under one name: registering them again
answers with the version that already holds them. Versions are history: archiving hides
one from lists and `@latest`; deleting one is explicit, and refused while a deployment
serves it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlform.config.refs import parse_asset_ref
from mlform.config.schema import did_you_mean
from mlform.errors import InUse, MlformError, NotFound
from mlform.registry.content import Stored
from mlform.state.records import dumps
from mlform.storage import Storage
from mlform.storage.blobs import blob_key

if TYPE_CHECKING:
    import duckdb

Reader = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

_COLUMNS = (
    "name, version, digest, type, framework, files, size, tags, description, source, run_id, "
    "metrics, datastore, strftime(created_at, '%Y-%m-%d %H:%M:%S'), archived, folder"
)
_ACTIVE = "status in ('running', 'creating')"


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: str
    digest: str
    type: str
    framework: str | None
    files: list[dict[str, Any]]
    size: int
    tags: dict[str, str]
    description: str | None
    source: str  # what registered it: run <id>, models/x.yml, or the CLI
    run_id: str | None
    metrics: dict[str, float]  # the producing run's final metrics
    datastore: str
    created_at: str = ""
    archived: bool = False
    # The registered folder's name (`model` for a path `../model/`), None for a single file:
    # a deployment finds the files under it in AZUREML_MODEL_DIR, as on Azure ML.
    folder: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True, slots=True)
class ModelRow:
    """A new model version."""

    model: ModelVersion

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        m = self.model
        con.execute(
            "insert into models values "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, false, false, ?)",
            [
                m.name,
                m.version,
                m.digest,
                m.type,
                m.framework,
                dumps(m.files),
                m.size,
                dumps(m.tags),
                m.description,
                m.source,
                m.run_id,
                dumps(m.metrics),
                m.datastore,
                apply_id,
                m.folder,
            ],
        )


@dataclass(frozen=True, slots=True)
class ModelTags:
    name: str
    version: str
    tags: Mapping[str, str]
    description: str | None = None
    keep_description: bool = True

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        if self.keep_description:
            con.execute(
                "update models set tags = ? where name = ? and version = ?",
                [dumps(dict(self.tags)), self.name, self.version],
            )
        else:
            con.execute(
                "update models set tags = ?, description = ? where name = ? and version = ?",
                [dumps(dict(self.tags)), self.description, self.name, self.version],
            )


@dataclass(frozen=True, slots=True)
class ModelArchived:
    name: str
    version: str | None  # None: every version of the name
    archived: bool = True

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        sql = "update models set archived = ? where name = ?"
        params: list[Any] = [self.archived, self.name]
        if self.version is not None:
            sql += " and version = ?"
            params.append(self.version)
        con.execute(sql, params)


@dataclass(frozen=True, slots=True)
class ModelDeleted:
    """The row stays (its number is never reused, runs still name it); the version is
    gone from every list, reference and download."""

    name: str
    version: str

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute(
            "update models set deleted = true, archived = true where name = ? and version = ?",
            [self.name, self.version],
        )


@dataclass(frozen=True, slots=True)
class Registration:
    """What registering produced: a new version, or the one that already held the files."""

    model: ModelVersion
    new: bool
    records: list[Any] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.new:
            return f"registered {self.model.ref}"
        return f"no new version: the files are those of {self.model.ref}"


# -- reading ------------------------------------------------------------------------------


def versions(
    read: Reader,
    name: str | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    archived: bool = False,
) -> list[ModelVersion]:
    sql = f"select {_COLUMNS} from models where not deleted"
    params: list[Any] = []
    if name is not None:
        sql += " and name = ?"
        params.append(name)
    if not archived:
        sql += " and not archived"
    found = [_model(row) for row in read(sql + " order by name, created_at", params)]
    found.sort(key=lambda m: (m.name, _number(m.version)))
    if tags:
        found = [m for m in found if all(m.tags.get(k) == v for k, v in tags.items())]
    return found


def latest(read: Reader, name: str) -> ModelVersion | None:
    """The highest numbered version that is not archived."""
    found = versions(read, name)
    return found[-1] if found else None


def next_version(read: Reader, name: str) -> str:
    """One past the highest version ever registered under `name`, archived or deleted:
    a number is never given to other files."""
    rows = read("select version from models where name = ?", [name])
    return str(max((_number(r[0]) for r in rows), default=0) + 1)


def with_digest(read: Reader, name: str, digest: str) -> ModelVersion | None:
    rows = read(
        f"select {_COLUMNS} from models where name = ? and digest = ? and not deleted "
        "order by created_at",
        [name, digest],
    )
    return _model(rows[0]) if rows else None


def resolve(read: Reader, ref: str) -> ModelVersion:
    """`name`, `name@latest` or `name:version` (`azureml:` allowed) to a version."""
    parsed = parse_asset_ref(ref)
    if parsed is None:
        raise MlformError(f"'{ref}' is not a model reference; write NAME:VERSION or NAME@latest")
    if parsed.version is None:
        found = latest(read, parsed.name)
    else:
        rows = read(
            f"select {_COLUMNS} from models where name = ? and version = ? and not deleted",
            [parsed.name, parsed.version],
        )
        found = _model(rows[0]) if rows else None
    if found is not None:
        return found
    known = sorted({r[0] for r in read("select name from models where not deleted", [])})
    if parsed.name in known:
        have = ", ".join(m.version for m in versions(read, parsed.name, archived=True))
        raise NotFound(
            f"model {parsed.name} has no version {parsed.version or '(all are archived)'}"
            f" (versions: {have or 'none'})"
        )
    hint = did_you_mean(parsed.name, known) or (
        f" (registered: {', '.join(known)})" if known else ""
    )
    raise NotFound(f"no model named '{parsed.name}'{hint}; `mlform models list` shows the registry")


def deployments_using(read: Reader, name: str, version: str | None = None) -> list[str]:
    """Active deployments serving `name` (or one version of it), as endpoint/deployment."""
    rows = read(
        f"select endpoint, name, model from deployments where {_ACTIVE} and "
        "(model = ? or starts_with(model, ?)) order by endpoint, name",
        [f"{name}:{version}", f"{name}:"] if version else [f"{name}:", f"{name}:"],
    )
    return [f"{endpoint}/{deployment} ({model})" for endpoint, deployment, model in rows]


@dataclass(frozen=True, slots=True)
class Lineage:
    run_id: str
    experiment: str
    runconfig: str | None
    status: str
    git_commit: str | None
    branch: str | None
    dirty: bool | None
    snapshot_id: str | None
    inputs: dict[str, Any]
    environment: str | None


def lineage(read: Reader, model: ModelVersion) -> Lineage | None:
    if model.run_id is None:
        return None
    rows = read(
        "select id, experiment, runconfig, status, git_commit, branch, dirty, snapshot_id, "
        "inputs, environment from runs where id = ?",
        [model.run_id],
    )
    if not rows:
        return None
    row = rows[0]
    run_id, experiment, runconfig, status, commit, branch, dirty, snapshot = row[:8]
    return Lineage(
        run_id,
        experiment,
        runconfig,
        status,
        commit,
        branch,
        dirty,
        snapshot,
        json.loads(row[8] or "{}"),
        row[9],
    )


# -- writing ------------------------------------------------------------------------------


def register(
    read: Reader,
    stored: Stored,
    *,
    name: str,
    datastore: str,
    source: str,
    version: str | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    run_id: str | None = None,
    metrics: Mapping[str, float] | None = None,
    folder: str | None = None,
) -> Registration:
    """A new version for files already kept in `datastore`, unless a version of `name`
    already holds exactly these files. `folder`: the registered folder's name (see
    `content.folder_name`), None for a single file."""
    same = with_digest(read, name, stored.digest)
    if same is not None:
        return Registration(same, new=False)
    model = ModelVersion(
        name=name,
        version=version or next_version(read, name),
        digest=stored.digest,
        type=stored.type,
        framework=stored.framework,
        files=[{"path": e.relpath, "size": e.size, "sha256": e.sha256} for e in stored.files],
        size=stored.size,
        tags=dict(tags or {}),
        description=description,
        source=source,
        run_id=run_id,
        metrics=dict(metrics or {}),
        datastore=datastore,
        folder=folder,
    )
    return Registration(model, new=True, records=[ModelRow(model)])


def refuse_if_used(read: Reader, name: str, version: str | None, what: str) -> None:
    users = deployments_using(read, name, version)
    if users:
        target = f"{name}:{version}" if version else f"model {name}"
        raise InUse(
            f"cannot {what} {target}: it is used by the active deployment "
            f"{', '.join(users)}; point the deployment at another version (or delete it) "
            "and apply first"
        )


def download(storage: Storage, model: ModelVersion, target: Path) -> list[Path]:
    """Copy a version's files into `target`, each checked against its sha256 as it is
    written; a file that does not match is removed and the download fails."""
    written = []
    for entry in model.files:
        path = target / entry["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        try:
            with storage.open(blob_key(entry["sha256"])) as src, path.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    sha.update(chunk)
                    dst.write(chunk)
        except FileNotFoundError:
            raise NotFound(
                f"{model.ref}: file {entry['path']} is missing from datastore "
                f"{model.datastore} ({storage.url}); the datastore was changed outside mlform"
            ) from None
        if sha.hexdigest() != entry["sha256"]:
            path.unlink()
            raise MlformError(
                f"{model.ref}: {entry['path']} in datastore {model.datastore} does not match "
                f"its digest (sha256 {sha.hexdigest()[:12]}, registered {entry['sha256'][:12]}): "
                "the stored copy is damaged"
            )
        written.append(path)
    return written


def materialize(storage: Storage, model: ModelVersion, target: Path) -> Path:
    """The version's files in `target` (a cache folder), verified; reused when complete."""
    done = target / ".mlform-complete"
    if done.is_file():
        return target
    if target.exists():
        shutil.rmtree(target)
    download(storage, model, target)
    done.write_text(model.digest, encoding="utf-8")
    return target


def _model(row: Sequence[Any]) -> ModelVersion:
    return ModelVersion(
        name=row[0],
        version=row[1],
        digest=row[2],
        type=row[3],
        framework=row[4],
        files=json.loads(row[5]),
        size=int(row[6]),
        tags=json.loads(row[7]),
        description=row[8],
        source=row[9],
        run_id=row[10],
        metrics=json.loads(row[11]),
        datastore=row[12],
        created_at=row[13],
        archived=bool(row[14]),
        folder=row[15],
    )


def _number(version: str) -> int:
    try:
        return int(version)
    except ValueError:
        return 0
