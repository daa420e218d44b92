"""Reading registered data: versions, their files, and a look at the rows through DuckDB."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import yaml

from mlform.config.refs import LocalPath, parse_asset_ref
from mlform.context import Context
from mlform.errors import DatastoreError, MlformError, NotFound
from mlform.hashing import Hasher
from mlform.loader import Config
from mlform.state.store import Store
from mlform.storage import filesystem, http, unreachable
from mlform.storage.local import copy_file

Reader = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

_READERS = {
    ".csv": "read_csv",
    ".tsv": "read_csv",
    ".txt": "read_csv",
    ".parquet": "read_parquet",
    ".pq": "read_parquet",
    ".json": "read_json",
    ".jsonl": "read_json",
    ".ndjson": "read_json",
}
_MLTABLE_READERS = {
    "read_delimited": "read_csv",
    "read_parquet": "read_parquet",
    "read_json_lines": "read_json",
}


@dataclass(frozen=True, slots=True)
class DataVersion:
    name: str
    version: str
    content_digest: str
    spec: dict[str, Any]
    manifest: list[dict[str, Any]]
    location: str
    size: int
    created_at: str
    archived: bool

    @property
    def type(self) -> str:
        return str(self.spec.get("type", "uri_folder"))


@dataclass(frozen=True, slots=True)
class Table:
    columns: list[tuple[str, str]]  # name, DuckDB type
    rows: list[tuple[Any, ...]]


_COLUMNS = (
    "name, version, content_digest, spec, manifest, location, size, "
    "strftime(created_at, '%Y-%m-%d %H:%M:%S'), archived"
)


def versions(store: Store, name: str | None = None, *, archived: bool = False) -> list[DataVersion]:
    sql = f"select {_COLUMNS} from asset_versions where kind = 'data'"
    params: list[Any] = []
    if name is not None:
        sql += " and name = ?"
        params.append(name)
    if not archived:
        sql += " and not archived"
    rows = store.query(sql + " order by name, created_at", params)
    return [_version(row) for row in rows]


def latest(store: Store) -> list[DataVersion]:
    by_name: dict[str, DataVersion] = {}
    for item in versions(store):
        by_name[item.name] = item  # ordered by creation: the last one is the latest
    return list(by_name.values())


def resolve(store: Store, ref: str) -> DataVersion:
    """`iris`, `iris:2`, `iris@latest`, `azureml:iris:2` → that version."""
    parsed = parse_asset_ref(ref)
    if parsed is None:
        raise MlformError(
            f"'{ref}' is not a data reference; write NAME, NAME:VERSION or NAME@latest"
        )
    found = versions(store, parsed.name, archived=True)
    if not found:
        known = sorted({v.name for v in versions(store)})
        hint = f"; registered: {', '.join(known)}" if known else "; run `mlform apply` first"
        raise NotFound(f"no data asset named '{parsed.name}'{hint}")
    if parsed.version is None:
        live = [v for v in found if not v.archived] or found
        return live[-1]
    for item in found:
        if item.version == parsed.version:
            return item
    have = ", ".join(v.version for v in found)
    raise NotFound(f"data asset '{parsed.name}' has no version {parsed.version} (versions: {have})")


def head(store: Store, config: Config, ref: str, rows: int = 10) -> Table:
    item = resolve(store, ref)
    with table_files(config, item) as (reader, paths):
        con = duckdb.connect()
        try:
            relation = con.sql(f"select * from {reader}(?) limit {int(rows)}", params=[paths])
            columns = list(zip(relation.columns, [str(t) for t in relation.types], strict=True))
            return Table(columns, relation.fetchall())
        except duckdb.Error as err:
            raise MlformError(f"cannot read {item.name}:{item.version} as a table: {err}") from err
        finally:
            con.close()


@contextmanager
def table_files(config: Config, item: DataVersion) -> Iterator[tuple[str, list[str]]]:
    """The DuckDB reader (`read_csv_auto`, `read_parquet`, …) and the local paths that
    read the version as one table, fetched if remote, while the block runs."""
    with _local_files(config, item) as files:
        yield _reader(item, files)


def _reader(item: DataVersion, files: dict[str, Path]) -> tuple[str, list[str]]:
    if item.type == "mltable" and "MLTable" in files:
        spec = yaml.safe_load(files["MLTable"].read_text(encoding="utf-8")) or {}
        for step in spec.get("transformations") or []:
            name = next(iter(step)) if isinstance(step, dict) else str(step)
            if name in _MLTABLE_READERS:
                paths = [str(p) for rel, p in sorted(files.items()) if rel != "MLTable"]
                return _MLTABLE_READERS[name], paths
    by_reader: dict[str, list[str]] = {}
    for rel, path in sorted(files.items()):
        reader = _READERS.get(Path(rel).suffix.lower())
        if reader:
            by_reader.setdefault(reader, []).append(str(path))
    if not by_reader:
        raise MlformError(
            f"{item.name}:{item.version} has no CSV, Parquet or JSON files to read as a table"
        )
    reader = max(by_reader, key=lambda r: len(by_reader[r]))
    return reader, by_reader[reader]


@contextmanager
def _local_files(config: Config, item: DataVersion) -> Iterator[dict[str, Path]]:
    """Each file of the version as a local path DuckDB can read, fetched if remote."""
    ctx = Context(config, Hasher(None))
    files: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="mlform-head-") as tmp:
        for entry in item.manifest:
            files[entry["path"]] = _fetch(ctx, item, entry, Path(tmp))
        yield files


def _fetch(ctx: Context, item: DataVersion, entry: dict[str, Any], tmp: Path) -> Path:
    if "key" in entry:
        store_name = item.location.removeprefix("datastore://").split("/", 1)[0]
        storage = ctx.storage(store_name)
        local = storage.local_path(entry["key"])
        if local is not None:
            return local
        target = tmp / str(entry["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(entry["key"]) as src:
            target.write_bytes(src.read())
        return target
    base, options = _where(ctx, item.location)
    # a location naming the file itself: a URL, or a remote path that ends in the file
    single = base.startswith("http") or (
        len(item.manifest) == 1 and base.rstrip("/").endswith(f"/{entry['path']}")
    )
    if "://" in base:  # in place on a remote store or behind a URL: fetched for the run
        target = tmp / str(entry["path"])
        source = base if single else f"{base.rstrip('/')}/{entry['path']}"
        _download(source, options, target)
        return target
    path = Path(base)
    return path if path.is_file() and len(item.manifest) == 1 else path / entry["path"]


def _where(ctx: Context, location: str) -> tuple[str, dict[str, Any]]:
    """A version's location as a local path or a URL, with the options to read it."""
    if not location.startswith("datastore://"):
        return location, {}
    store_name, _, sub = location.removeprefix("datastore://").partition("/")
    store = ctx.config.datastore(store_name)
    if isinstance(store.location, LocalPath):
        return str(store.location.path / sub), {}
    return f"{store.location.url.rstrip('/')}/{sub}", ctx.config.storage_options(store)


def direct_location(ctx: Context, item: DataVersion) -> str | None:
    """Where a version's files are, for an input in `direct` mode: the URL or folder
    they were registered from; None when they were uploaded (they are only blobs then)."""
    if any("key" in entry for entry in item.manifest):
        return None
    base, _ = _where(ctx, item.location)
    if (
        "://" not in base
        and len(item.manifest) == 1
        and Path(base, item.manifest[0]["path"]).is_file()
    ):
        return str(Path(base, item.manifest[0]["path"])) if item.type == "uri_file" else base
    return base


def download(url: str, folder: Path, kind: str) -> Path:
    """A job input given as a URL, fetched into `folder`: the file for a `uri_file` (or
    any `http(s)://` URL), else the folder."""
    if urlsplit(url).scheme in http.SCHEMES:
        target = folder / http.name_of(url)
        _download(url, {}, target)
        return target if kind == "uri_file" else folder
    try:
        fs, root = filesystem(url, {})
        if fs.isfile(root):
            target = folder / root.rsplit("/", 1)[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(root, str(target))
            return target if kind == "uri_file" else folder
        folder.mkdir(parents=True, exist_ok=True)
        fs.get(f"{root.rstrip('/')}/", str(folder), recursive=True)
    except MlformError:
        raise
    except Exception as err:
        raise DatastoreError(unreachable(url, err) or f"cannot read {url}: {err}") from err
    return folder


def _download(source: str, options: dict[str, Any], target: Path) -> None:
    if urlsplit(source).scheme in http.SCHEMES:
        http.download(source, target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fs, path = filesystem(source, options)
        fs.get_file(path, str(target))
    except Exception as err:
        said = unreachable(source, err) or f"cannot read {source}: {err}"
        raise DatastoreError(said) from err


def find(read: Reader, name: str, version: str) -> DataVersion | None:
    """One version, read from any thread (`Context.read`, `Store.read`)."""
    rows = read(
        f"select {_COLUMNS} from asset_versions where kind = 'data' and name = ? and version = ?",
        [name, version],
    )
    return _version(rows[0]) if rows else None


def materialize(ctx: Context, item: DataVersion, target: Path) -> None:
    """Copy a version's files into `target` (a reflink where the filesystem can), so a run
    reads exactly the registered content however the working copy changes."""
    with tempfile.TemporaryDirectory(prefix="mlform-fetch-") as tmp:
        for entry in item.manifest:
            source = _fetch(ctx, item, entry, Path(tmp))
            dest = target / str(entry["path"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            copy_file(source, dest)


def _version(row: Sequence[Any]) -> DataVersion:
    return DataVersion(
        name=row[0],
        version=row[1],
        content_digest=row[2],
        spec=json.loads(row[3]),
        manifest=json.loads(row[4]),
        location=row[5],
        size=int(row[6]),
        created_at=str(row[7])[:19],
        archived=bool(row[8]),
    )
