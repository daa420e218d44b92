"""Datastore backends: where data versions and artifacts are kept.

A backend is a small `Storage` protocol, picked by the datastore's location: a local
folder, or any fsspec URL. Adding a scheme with special needs is one module and one line
in `BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from mlform.config.refs import LocalPath
from mlform.config.specs import DatastoreSpec

# URL scheme → the extra that installs its fsspec driver
EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}


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


def open_storage(spec: DatastoreSpec) -> Storage:
    backend = "local" if isinstance(spec.location, LocalPath) else "fsspec"
    return BACKENDS[backend](spec)


def protocol_problem(scheme: str) -> str | None:
    """Why `scheme://` URLs cannot be used here, or None when they can."""
    import fsspec

    try:
        fsspec.get_filesystem_class(scheme)
    except ValueError:
        return f"unknown URL scheme '{scheme}://'; use a local path or an fsspec URL"
    except ImportError:
        extra = EXTRAS.get(scheme)
        how = f"pip install 'mlform[{extra}]'" if extra else "install its fsspec driver"
        return f"'{scheme}://' URLs need an extra package: {how}"
    return None


def _local(spec: DatastoreSpec) -> Storage:
    from mlform.storage.local import LocalStorage

    assert isinstance(spec.location, LocalPath)
    return LocalStorage(spec.location.path)


def _fsspec(spec: DatastoreSpec) -> Storage:
    from mlform.storage.remote import FsspecStorage

    return FsspecStorage(spec)


BACKENDS: dict[str, Callable[[DatastoreSpec], Storage]] = {"local": _local, "fsspec": _fsspec}
