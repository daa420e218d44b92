"""Data assets: files, folders and tables, versioned by content.

A local path is uploaded into the default datastore, content-addressed, so every
version stays readable however the working copy changes (Azure ML's CLI uploads local
data the same way). A path already on a datastore or behind a URL is referenced in place
and fingerprinted.
"""

from __future__ import annotations

import errno
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlform.components import canonical
from mlform.config.refs import DatastorePath, LocalPath, Location, Url
from mlform.config.specs import Source
from mlform.context import Context, Outcome
from mlform.errors import ApplyError, DatastoreError, PlanError
from mlform.hashing import FileEntry, sha256_file, sha256_text, tree_digest
from mlform.kind import Kind
from mlform.kinds.base import base_components, declared, latest_version, plural
from mlform.kinds.data.declaring import DataDeclaring
from mlform.kinds.data.spec import DataSpec
from mlform.plan import keys
from mlform.plan.model import Change, Desired, Payload
from mlform.sizes import human_size
from mlform.state.records import Archive, AssetMetadata, AssetVersion, Recorded
from mlform.storage import filesystem, http, unreachable
from mlform.storage.blobs import blob_key

__all__ = ["DataKind", "DataPayload", "Scan", "human_size", "scan_location"]

_LISTED_FILES = 1000  # past this many files, a folder is one "content" component
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)  # as Path.is_file


class Located(Protocol):
    """What names files to scan: a data asset or a model."""

    @property
    def address(self) -> str: ...
    @property
    def source(self) -> Source: ...
    @property
    def location(self) -> Location: ...


@dataclass(frozen=True, slots=True)
class Scan:
    files: Sequence[FileEntry]
    root: Path | None  # local folder the relpaths are under; None when remote
    location: str  # where the content is read from when not uploaded
    upload: bool


@dataclass(frozen=True, slots=True)
class DataPayload(Payload):
    spec: DataSpec
    scan: Scan
    content: str  # the digest of every file's content


class DataKind(DataDeclaring, Kind[DataSpec, DataPayload]):
    payload = DataPayload

    def desire(self, spec: DataSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        scan = scan_location(spec, ctx)
        deps = ctx.config.deps.get(spec.address, ())
        components = base_components(spec, upstream, deps)
        content = tree_digest(scan.files)
        if len(scan.files) <= _LISTED_FILES:
            components.update({str(keys.File(f.relpath)): f.sha256 for f in scan.files})
        else:
            components[str(keys.Content())] = content
        size = sum(f.size for f in scan.files)
        return declared(
            spec,
            ctx,
            components,
            version_key=sha256_text(spec.type, content, canonical(spec.version)),
            version=spec.version,
            summary=f"{plural(len(scan.files), 'file')}, {human_size(size)}",
            payload=DataPayload(spec, scan, content),
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        return None

    def apply(self, change: Change, payload: DataPayload, ctx: Context) -> Outcome:
        assert change.after is not None
        spec, scan, content = payload.spec, payload.scan, payload.content
        before = dict(change.before.outputs) if change.before else {}
        if change.version is None:  # metadata only: the current version gets it
            version = str(before["version"])
            outputs = {**before, "version_key": change.after.version_key}
            return Outcome(outputs, [AssetMetadata("data", spec.name, version, change.after.spec)])
        store = ctx.config.default_datastore
        manifest: list[dict[str, Any]] = []
        for entry in scan.files:
            item: dict[str, Any] = {
                "path": entry.relpath,
                "size": entry.size,
                "sha256": entry.sha256,
            }
            if scan.upload:
                assert scan.root is not None
                _upload(ctx, store, scan.root / entry.relpath, entry)
                item["key"] = blob_key(entry.sha256)
            manifest.append(item)
        location = f"datastore://{store}" if scan.upload else scan.location
        size = sum(f.size for f in scan.files)
        record = AssetVersion(
            "data", spec.name, change.version, content, change.after.spec, manifest, location, size
        )
        outputs = {
            "version": change.version,
            "latest_version": latest_version(before.get("latest_version"), change.version),
            "version_key": change.after.version_key,
            "content_digest": content,
            "location": location,
            "size": size,
            "files": len(manifest),
        }
        ctx.log(change.address, f"registered version {change.version} ({change.after.summary})")
        return Outcome(outputs, [record], f"version {change.version}")

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        assert change.before is not None
        return Outcome(
            change.before.outputs, [Archive("data", change.before.name)], "versions archived"
        )


def _upload(ctx: Context, store: str, source: Path, entry: FileEntry) -> None:
    storage = ctx.storage(store)
    key = blob_key(entry.sha256)
    if storage.exists(key):
        return
    storage.put(source, key)
    local = storage.local_path(key)
    if local is not None and sha256_file(local) != entry.sha256:
        local.unlink()
        raise ApplyError(f"{source} changed while it was being registered; run `mlform plan` again")


def scan_location(spec: Located, ctx: Context) -> Scan:
    """The files at a data or model path: hashed locally (stat-cached), or fingerprinted
    from what a remote store reports."""
    location = spec.location
    if isinstance(location, LocalPath):
        return _scan_local(spec, location.path, str(location.path), upload=True, ctx=ctx)
    if isinstance(location, DatastorePath):
        store = ctx.config.datastore(location.datastore)
        if isinstance(store.location, LocalPath):
            path = store.location.path / location.path
            where = f"datastore://{location.datastore}/{location.path}"
            return _scan_local(spec, path, where, upload=False, ctx=ctx)
        url = f"{store.location.url.rstrip('/')}/{location.path}"
        return _scan_remote(spec, url, ctx.config.storage_options(store))
    assert isinstance(location, Url)
    if location.scheme in http.SCHEMES:
        return _scan_http(spec, location.url)
    return _scan_remote(spec, location.url, {})


def _scan_http(spec: Located, url: str) -> Scan:
    try:
        remote = http.stat(url)
    except DatastoreError as err:
        raise PlanError(f"{spec.address} ({spec.source}): {err}") from None
    entry = FileEntry(remote.name, remote.size, sha256_text(remote.name, remote.fingerprint))
    return Scan([entry], None, url, upload=False)


def _scan_local(spec: Located, path: Path, where: str, *, upload: bool, ctx: Context) -> Scan:
    try:
        st = path.stat()  # once: plan stats every data file of the workspace
    except OSError as err:
        if err.errno not in _MISSING:
            raise
    else:
        if stat.S_ISREG(st.st_mode):
            entry = FileEntry(path.name, st.st_size, ctx.hasher.file(path, st))
            return Scan([entry], path.parent, where, upload)
        if stat.S_ISDIR(st.st_mode):
            return Scan(ctx.hasher.folder(path), path, where, upload)
    raise PlanError(f"{spec.address} ({spec.source}): path {where} does not exist")


def _scan_remote(spec: Located, url: str, options: dict[str, Any]) -> Scan:
    """Fingerprint remote files by what the store reports (ETag, checksum, size, mtime)
    rather than downloading them on every plan, as DVC does for remote dependencies."""
    try:
        fs, root = filesystem(url, options)
        info = fs.info(root)  # one round trip that fails plainly (isfile hides errors)
        if info["type"] == "file":
            infos = {root.rsplit("/", 1)[-1]: info}
        else:
            found = fs.find(root, detail=True)
            infos = {p[len(root) :].lstrip("/"): i for p, i in found.items() if i["type"] == "file"}
    except Exception as err:
        said = unreachable(url, err)
        if said is None and isinstance(err, FileNotFoundError):
            said = f"{url} does not exist"
        said = said or f"cannot read {url}: {err}"
        raise PlanError(f"{spec.address} ({spec.source}): {said}") from None
    if not infos:
        raise PlanError(f"{spec.address} ({spec.source}): {url} has no files")
    files = [
        FileEntry(rel, int(info.get("size") or 0), sha256_text(rel, _fingerprint(info)))
        for rel, info in sorted(infos.items())
    ]
    return Scan(files, None, url, upload=False)


def _fingerprint(info: Mapping[str, Any]) -> str:
    for key in ("sha256", "md5", "ETag", "etag", "checksum", "crc32c", "content_md5"):
        if info.get(key):
            return f"{key}:{info[key]}"
    changed = next(
        (
            info[k]
            for k in ("mtime", "LastModified", "last_modified", "updated", "created")
            if info.get(k)
        ),
        None,
    )
    return f"size:{info.get('size')}:changed:{changed}"


KIND = DataKind()
