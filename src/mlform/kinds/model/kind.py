"""Models declared in models/*.yml: files registered as a new version when they change.

The files are copied into the default datastore by content, read once as they are
hashed, so each version stays downloadable however the working copy changes. Editing
only tags or the description updates the latest version in place; the same content is
never registered twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlform.context import Context, Outcome
from mlform.errors import ApplyError, NotFound
from mlform.hashing import FileEntry, sha256_text, tree_digest
from mlform.kind import Kind
from mlform.kinds.base import base_components, declared, latest_version, plural
from mlform.kinds.data.kind import Scan, scan_location
from mlform.kinds.model.declaring import ModelDeclaring
from mlform.kinds.model.spec import ModelSpec
from mlform.plan import keys
from mlform.plan.model import Change, Desired, Payload
from mlform.registry import content, models
from mlform.sizes import human_size
from mlform.state.records import Recorded
from mlform.storage import Storage
from mlform.storage.blobs import ingest_stream

_LISTED_FILES = 1000


@dataclass(frozen=True, slots=True)
class ModelPayload(Payload):
    spec: ModelSpec
    scan: Scan


class ModelKind(ModelDeclaring, Kind[ModelSpec, ModelPayload]):
    payload = ModelPayload

    def desire(self, spec: ModelSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        scan = scan_location(spec, ctx)
        components = base_components(spec, upstream, ctx.config.deps.get(spec.address, ()))
        digest = tree_digest(scan.files)
        if len(scan.files) <= _LISTED_FILES:
            components.update({str(keys.File(f.relpath)): f.sha256 for f in scan.files})
        else:
            components[str(keys.Content())] = digest
        rows = ctx.read("select version from models where name = ?", [spec.name])
        numbers = [int(r[0]) for r in rows if str(r[0]).isdigit()]
        size = sum(f.size for f in scan.files)
        return declared(
            spec,
            ctx,
            components,
            version_key=sha256_text(spec.type, digest),
            version=spec.version,
            numbered_from=str(max(numbers)) if numbers else None,
            summary=f"{plural(len(scan.files), 'file')}, {human_size(size)}",
            payload=ModelPayload(spec, scan),
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        return None

    def refuse(self, change: Change, ctx: Context) -> str | None:
        """A model serving an active deployment is not archived under it."""
        if change.after is not None or change.before is None:
            return None
        users = models.deployments_using(ctx.read, change.name)
        if not users:
            return None
        return (
            f"{change.address} cannot be removed: its versions are used by the active "
            f"deployment {', '.join(users)}. Restore {change.before.source.split(':')[0]}, "
            "or move the deployment to another model and apply first"
        )

    def apply(self, change: Change, payload: ModelPayload, ctx: Context) -> Outcome:
        assert change.after is not None
        spec, scan = payload.spec, payload.scan
        before = dict(change.before.outputs) if change.before else {}
        if change.version is None:  # tags or description only: the current version gets them
            version = str(before["version"])
            record = models.ModelTags(
                spec.name,
                version,
                {k: str(v) for k, v in (spec.body.get("tags") or {}).items()},
                spec.body.get("description"),
                keep_description=False,
            )
            return Outcome({**before, "version_key": change.after.version_key}, [record])
        store = ctx.config.default_datastore
        storage = ctx.storage(store)
        storage.ensure()
        try:
            entries = _store(scan, storage)
            stored = content.describe(entries, spec.type, scan.root)
        except NotFound as err:
            raise ApplyError(f"{change.address} ({spec.source}): {err}") from err
        planned = {f.relpath: f.sha256 for f in scan.files}
        if scan.root is not None and {e.relpath: e.sha256 for e in entries} != planned:
            raise ApplyError(
                f"{change.address}: the files at {scan.location} changed while they were being "
                "registered; run `mlform plan` again"
            )
        done = models.register(
            ctx.read,
            stored,
            name=spec.name,
            datastore=store,
            source=spec.source.file,
            version=change.version,
            tags={k: str(v) for k, v in (spec.body.get("tags") or {}).items()},
            description=spec.body.get("description"),
            folder=_folder(scan),
        )
        version = done.model.version
        outputs = {
            "version": version,
            "latest_version": latest_version(before.get("latest_version"), version),
            "version_key": change.after.version_key,
            "digest": stored.digest,
            "type": stored.type,
            "framework": stored.framework,
            "size": stored.size,
            "files": len(stored.files),
        }
        kind = stored.framework or stored.type
        message = f"{done.message} ({kind}, {change.after.summary})"
        ctx.log(change.address, message)
        return Outcome(outputs, done.records, message)

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        assert change.before is not None
        return Outcome(
            change.before.outputs,
            [models.ModelArchived(change.before.name, None)],
            "versions archived",
        )


def _folder(scan: Scan) -> str | None:
    """The registered folder's name; None for a single file (its one entry is named as
    the path's last component)."""
    name = scan.location.rstrip("/").rsplit("/", 1)[-1]
    if len(scan.files) == 1 and scan.files[0].relpath == name:
        return None
    return name


def _store(scan: Scan, storage: Storage) -> list[FileEntry]:
    if scan.root is not None:
        root: Path = scan.root
        planned = {f.relpath: f.sha256 for f in scan.files}
        files = [(f.relpath, root / f.relpath) for f in scan.files]
        return content.store_files(storage, files, known=planned.get)
    return _download(scan, storage)


def _download(scan: Scan, storage: Storage) -> list[FileEntry]:
    """Remote model files, streamed through the hash into the datastore."""
    # start-up: fsspec, only when a model is read from a URL
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(scan.location)
    single = len(scan.files) == 1 and fs.isfile(root)
    entries = []
    for entry in scan.files:
        path = root if single else f"{root.rstrip('/')}/{entry.relpath}"
        with fs.open(path, "rb") as stream:
            digest, size = ingest_stream(storage, stream, f"{scan.location}/{entry.relpath}")
        entries.append(FileEntry(entry.relpath, size, digest))
    return entries


KIND = ModelKind()
