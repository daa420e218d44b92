"""Datastore backends: where data versions and artifacts are kept.

A backend is a small `Storage` protocol, picked by the datastore's location: a local
folder, or any fsspec URL. Adding a scheme with special needs is one module and one line
in `BACKENDS`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from mlform.config.refs import LocalPath
from mlform.config.specs import DatastoreSpec
from mlform.errors import why_unreachable

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


class Storage(Protocol):
    """A place to keep immutable, content-addressed objects under string keys."""

    url: str

    def ensure(self) -> None:
        """Create the root if needed; raise DatastoreError if it cannot be reached."""

    def exists(self, key: str) -> bool: ...

    def put(self, source: Path, key: str) -> None:
        """Store `source` under `key` atomically: readers never see a partial object."""

    def open(self, key: str) -> BinaryIO: ...

    def local_path(self, key: str) -> Path | None:
        """A local file holding `key`, when the backend has one (for DuckDB to read)."""


def open_storage(spec: DatastoreSpec, options: Mapping[str, Any]) -> Storage:
    """The datastore's client; `options`: its storage_options with secrets resolved
    (`Config.storage_options`)."""
    backend = "local" if isinstance(spec.location, LocalPath) else "fsspec"
    return BACKENDS[backend](spec, options)


def filesystem(url: str, options: Mapping[str, Any]) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and path for `url`, Azure ML's URL forms included."""
    # start-up: fsspec and Azure's URL forms, only for data at a URL
    from fsspec.core import url_to_fs

    from mlform.storage import azure

    target, implied = azure.translate(url)
    fs, path = url_to_fs(target, **{**implied, **options})
    return fs, str(path)


def unreachable(url: str, err: BaseException) -> str | None:
    """What to tell the user when reading `url` failed with `err` because its host could
    not be reached (drivers bury that under their own errors, some under "not found");
    None when that was not the problem."""
    host = urlsplit(url).hostname or url
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, socket.gaierror | ConnectionRefusedError | TimeoutError):
            return f"cannot reach {host}: {why_unreachable(seen)}; check the URL or your network"
        seen = seen.__cause__ or seen.__context__
    return None


def _local(spec: DatastoreSpec, options: Mapping[str, Any]) -> Storage:
    # start-up: a backend's module only when a datastore of its kind is opened
    from mlform.storage.local import LocalStorage

    assert isinstance(spec.location, LocalPath)
    return LocalStorage(spec.location.path)


def _fsspec(spec: DatastoreSpec, options: Mapping[str, Any]) -> Storage:
    # start-up: a backend's module only when a datastore of its kind is opened
    from mlform.storage.remote import FsspecStorage

    return FsspecStorage(spec, options)


BACKENDS: dict[str, Callable[[DatastoreSpec, Mapping[str, Any]], Storage]] = {
    "local": _local,
    "fsspec": _fsspec,
}
