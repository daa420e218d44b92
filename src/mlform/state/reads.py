"""What readers read from the state, kept beside it while the file is unchanged.

A plan that changes nothing reads the same rows every time: the resources, the step
runs, the latest model versions. Readers keep each query's rows in
`state.duckdb.reads`, tagged with the state file's signature (size, times and inode of
the file and of its write-ahead log) and the schema's migrations; the next reader of an
unchanged file answers from it, and never imports or opens DuckDB. Any write changes
the signature, so nothing stale is ever served: readers hold the file's shared lock
(`lock.Access`) from the moment they look at the signature until they save, and writers
need it exclusively to write.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlform import private

_FILE = ".reads"


def signature(db: Path) -> list[Any]:
    """The state file and its WAL as the filesystem sees them now."""
    found: list[Any] = []
    for path in (db, db.with_name(db.name + ".wal")):
        try:
            st = path.stat()
        except FileNotFoundError:
            found.append(None)
        else:
            found.append([st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return found


class ReadCache:
    def __init__(
        self, db: Path, tag: list[Any], queries: dict[str, list[Any]], *, dirty: bool
    ) -> None:
        self.db = db
        self.tag = tag
        self.queries = queries
        self.dirty = dirty

    @classmethod
    def load(cls, db: Path, migrations: Sequence[str]) -> ReadCache | None:
        """The reads kept for `db`, if it is exactly the file they were read from."""
        try:
            data = json.loads(_path(db).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        tag = _tag(db, migrations)
        if not isinstance(data, dict) or data.get("tag") != tag:
            return None
        return cls(db, tag, dict(data.get("queries") or {}), dirty=False)

    @classmethod
    def start(cls, db: Path, migrations: Sequence[str]) -> ReadCache:
        return cls(db, _tag(db, migrations), {}, dirty=True)

    def get(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        rows = self.queries.get(_key(sql, params))
        return None if rows is None else [tuple(row) for row in rows]

    def put(self, sql: str, params: Sequence[Any], rows: list[Any]) -> None:
        try:
            json.dumps(rows)
        except (TypeError, ValueError):
            return  # a value JSON cannot hold: that query is simply not kept
        self.queries[_key(sql, params)] = [list(row) for row in rows]
        self.dirty = True

    def save(self) -> None:
        """Keep the reads, if the file is still the one they came from."""
        if not self.dirty or self.tag[0] != signature(self.db):
            return
        data = json.dumps({"tag": self.tag, "queries": self.queries}).encode()
        with contextlib.suppress(OSError):  # only a lost speed-up
            private.write(_path(self.db), data, durable=False)  # it holds state rows


def _tag(db: Path, migrations: Sequence[str]) -> list[Any]:
    return [signature(db), list(migrations)]


def _key(sql: str, params: Sequence[Any]) -> str:
    return json.dumps([sql, list(params)], default=str)


def _path(db: Path) -> Path:
    return db.with_name(db.name + _FILE)
