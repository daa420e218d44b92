"""What `mlform models …` does, as library calls: each opens the state, does one thing,
and records it with an audit event in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlform.config.containment import Boundary, link_outside
from mlform.config.names import name_problem
from mlform.config.refs import parse_asset_ref
from mlform.config.specs import DatastoreSpec
from mlform.context import Context
from mlform.errors import MlformError, NotFound
from mlform.hashing import Hasher
from mlform.registry import content, models
from mlform.registry.models import ModelVersion
from mlform.state.records import Event
from mlform.state.store import Store
from mlform.storage.blobs import blob_key

if TYPE_CHECKING:
    from mlform.hashing import Hasher
    from mlform.opened import OpenWorkspace


@dataclass(frozen=True, slots=True)
class Shown:
    model: ModelVersion
    lineage: models.Lineage | None
    versions: list[ModelVersion]
    used_by: list[str]


def list_models(
    ws: OpenWorkspace,
    *,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    archived: bool = False,
) -> list[ModelVersion]:
    with ws.store("models list") as store:
        return models.versions(store.read, name, tags=tags, archived=archived)


def show(ws: OpenWorkspace, ref: str) -> Shown:
    with ws.store("models show") as store:
        model = models.resolve(store.read, ref)
        return Shown(
            model,
            models.lineage(store.read, model),
            models.versions(store.read, model.name, archived=True),
            models.deployments_using(store.read, model.name, model.version),
        )


def download(ws: OpenWorkspace, ref: str, target: Path) -> tuple[ModelVersion, list[Path]]:
    with ws.store("models download") as store:
        model = models.resolve(store.read, ref)
    storage = Context(ws.config, _no_hasher()).storage(model.datastore)
    return model, models.download(storage, model, target)


def open_file(ws: OpenWorkspace, ref: str, path: str) -> tuple[ModelVersion, int, BinaryIO]:
    """One file of a model version, open for reading from its datastore, and its size."""
    with ws.store("models download") as store:
        model = models.resolve(store.read, ref)
    entry = next((f for f in model.files if f["path"] == path), None)
    if entry is None:
        raise NotFound(f"{model.ref} has no file {path}")
    storage = Context(ws.config, _no_hasher()).storage(model.datastore)
    return model, int(entry["size"]), storage.open(blob_key(entry["sha256"]))


def register(
    ws: OpenWorkspace,
    name: str,
    path: Path,
    *,
    type: str | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
) -> models.Registration:
    """Register the files at `path` by hand (`mlform models register NAME PATH`)."""

    problem = name_problem(name)
    if problem:
        raise MlformError(f"model name {problem}")
    stores = [s for s in ws.config.specs.values() if isinstance(s, DatastoreSpec)]
    boundary = Boundary.of(ws.root, stores)
    target = boundary.outside(path, data=True)
    if target is not None:
        raise MlformError(boundary.message("model path", str(path), path, target, data=True))
    link = link_outside(path, boundary) if path.is_dir() else None
    if link is not None:
        raise MlformError(
            f"model path '{path}' holds {link[0]}, a symbolic link to {link[1]}, outside "
            f"{boundary.where()}; copy what it points at into the folder instead"
        )

    if not path.exists():
        raise NotFound(f"model path {path} does not exist; give the model's file or folder")
    ctx = Context(ws.config, _no_hasher())
    store_name = ws.config.default_datastore
    storage = ctx.storage(store_name)
    storage.ensure()
    with ws.store("models register", write=True) as store:
        files = content.files_under(path)
        entries = content.store_files(storage, files)
        stored = content.describe(entries, type, path if path.is_dir() else path.parent)
        done = models.register(
            store.read,
            stored,
            name=name,
            datastore=store_name,
            source=f"mlform models register {path}",
            tags=tags,
            description=description,
            folder=content.folder_name(path),
        )
        if done.new:
            _write(store, f"model/{name}", "model-register", done.message, done.records)
        return done


def tag(
    ws: OpenWorkspace, ref: str, set_tags: Mapping[str, str], remove: Sequence[str] = ()
) -> ModelVersion:
    with ws.store("models tag", write=True) as store:
        model = models.resolve(store.read, ref)
        missing = [key for key in remove if key not in model.tags]
        if missing:
            raise NotFound(
                f"{model.ref} has no tag {', '.join(missing)} "
                f"(tags: {', '.join(sorted(model.tags)) or 'none'})"
            )
        tags = {k: v for k, v in model.tags.items() if k not in remove} | dict(set_tags)
        record = models.ModelTags(model.name, model.version, tags)
        _write(store, f"model/{model.name}", "model-tag", f"{model.ref} tags {tags}", [record])
        return models.resolve(store.read, model.ref)


def archive(ws: OpenWorkspace, ref: str, *, restore: bool = False) -> list[ModelVersion]:
    """Archive (or restore) one version, or every version of a name given without one."""
    parsed = parse_asset_ref(ref)
    if parsed is None:
        raise MlformError(f"'{ref}' is not a model reference; write NAME or NAME:VERSION")
    with ws.store("models archive", write=True) as store:
        every = models.versions(store.read, parsed.name, archived=True)
        if not every:
            models.resolve(store.read, ref)  # says what exists
        chosen = [m for m in every if parsed.version in (None, m.version)]
        if not chosen:
            models.resolve(store.read, ref)
        if not restore:
            models.refuse_if_used(store.read, parsed.name, parsed.version, "archive")
        record = models.ModelArchived(parsed.name, parsed.version, archived=not restore)
        verb = "restored" if restore else "archived"
        refs = ", ".join(m.ref for m in chosen)
        _write(store, f"model/{parsed.name}", f"model-{verb[:-1]}", f"{verb} {refs}", [record])
        return chosen


def delete(ws: OpenWorkspace, ref: str) -> ModelVersion:
    with ws.store("models delete", write=True) as store:
        model = models.resolve(store.read, ref)
        if ":" not in ref.removeprefix("azureml:"):
            raise MlformError(
                f"give the version to delete, e.g. {model.ref}; deleting is one version at a time"
            )
        models.refuse_if_used(store.read, model.name, model.version, "delete")
        record = models.ModelDeleted(model.name, model.version)
        _write(store, f"model/{model.name}", "model-delete", f"deleted {model.ref}", [record])
        return model


def _write(store: Store, address: str, action: str, message: str, records: list[Any]) -> None:
    assert store.lock is not None and store.lock.info is not None
    store.write(store.lock.info.id, [*records, Event(address, action, "succeeded", message)])


def _no_hasher() -> Hasher:
    """Registering by hand hashes each file once as it is stored: no stat cache."""
    return Hasher(None)
