"""A datastore behind an fsspec URL (s3://, gs://, az://, file://, …)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, cast

from mlform.config.refs import Url
from mlform.config.specs import DatastoreSpec
from mlform.errors import DatastoreError
from mlform.storage import filesystem


class FsspecStorage:
    def __init__(self, spec: DatastoreSpec, options: Mapping[str, Any]) -> None:
        assert isinstance(spec.location, Url)
        self.url = spec.location.url
        self.name = spec.name
        try:
            self.fs, self.root = filesystem(self.url, options)
        except (ImportError, ValueError) as err:
            raise DatastoreError(f"datastore '{spec.name}' ({self.url}): {err}") from err

    def _path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def ensure(self) -> None:
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except Exception as err:  # drivers raise their own types for auth and network
            raise DatastoreError(
                f"datastore '{self.name}' ({self.url}) is not reachable: {err}"
            ) from err

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def put(self, source: Path, key: str) -> None:
        try:
            self.fs.put_file(str(source), self._path(key))
        except Exception as err:
            raise DatastoreError(f"cannot upload {source} to {self.url}: {err}") from err

    def open(self, key: str) -> BinaryIO:
        return cast(BinaryIO, self.fs.open(self._path(key), "rb"))

    def local_path(self, key: str) -> Path | None:
        return None

    def info(self, key: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.fs.info(self._path(key)))
