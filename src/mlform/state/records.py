"""The rows mlform keeps: what a resource looked like when last applied, and its history.

Each record that an apply produces knows how to write itself inside the transaction the
executor opens for its change, so a change and everything it records commit together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import duckdb


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A resource as the state remembers it."""

    address: str
    kind: str
    name: str
    digest: str | None  # None when no apply of it has succeeded yet
    components: Mapping[str, str]
    spec: Mapping[str, Any]
    outputs: Mapping[str, Any]
    status: str  # applied | failed
    error: str | None
    protect: bool
    source: str
    drift: str | None = None  # what refresh found different in the real world
    # A runconfig's digests that a completed run satisfies: back at any of them, it is applied.
    completed: frozenset[str] = frozenset()


class Record(Protocol):
    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ResourceRow:
    address: str
    kind: str
    name: str
    digest: str | None
    components: Mapping[str, str]
    spec: Mapping[str, Any]
    outputs: Mapping[str, Any]
    status: str
    error: str | None
    protect: bool
    source: str

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute("delete from resources where address = ?", [self.address])
        con.execute(
            "insert into resources values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?)",
            [
                self.address,
                self.kind,
                self.name,
                self.digest,
                dumps(self.components),
                dumps(self.spec),
                dumps(self.outputs),
                self.status,
                self.error,
                self.protect,
                self.source,
                apply_id,
            ],
        )


# An apply's own events; audit events (mlform.access.audit) fill the columns after these.
EVENT_COLUMNS = "occurred_at, apply_id, address, action, status, message"


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the audit log, committed with the change it describes."""

    address: str
    action: str
    status: str
    message: str

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute(
            f"insert into events ({EVENT_COLUMNS}) values (now(), ?, ?, ?, ?, ?)",
            [apply_id, self.address, self.action, self.status, self.message],
        )


@dataclass(frozen=True, slots=True)
class AssetVersion:
    """One immutable version of a data asset or environment (later: models)."""

    kind: str
    name: str
    version: str
    content_digest: str
    spec: Mapping[str, Any]
    manifest: Sequence[Mapping[str, Any]]
    location: str
    size: int
    created_at: str = ""
    archived: bool = False

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute(
            "delete from asset_versions where kind = ? and name = ? and version = ?",
            [self.kind, self.name, self.version],
        )
        con.execute(
            "insert into asset_versions values (?, ?, ?, ?, ?, ?, ?, ?, now(), ?, false)",
            [
                self.kind,
                self.name,
                self.version,
                self.content_digest,
                dumps(self.spec),
                dumps(list(self.manifest)),
                self.location,
                self.size,
                apply_id,
            ],
        )


@dataclass(frozen=True, slots=True)
class AssetMetadata:
    """New description and tags for an existing version: metadata is mutable, content not."""

    kind: str
    name: str
    version: str
    spec: Mapping[str, Any]

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute(
            "update asset_versions set spec = ? where kind = ? and name = ? and version = ?",
            [dumps(self.spec), self.kind, self.name, self.version],
        )


@dataclass(frozen=True, slots=True)
class Archive:
    """Versions are history: deleting an asset archives them, never erases them."""

    kind: str
    name: str

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute(
            "update asset_versions set archived = true where kind = ? and name = ?",
            [self.kind, self.name],
        )


@dataclass(frozen=True, slots=True)
class EnvironmentBuild:
    build_digest: str
    path: str
    python: str
    packages: Sequence[str] = field(default_factory=list)
    seconds: float = 0.0

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute("delete from environment_builds where build_digest = ?", [self.build_digest])
        con.execute(
            "insert into environment_builds values (?, ?, ?, ?, now(), ?)",
            [self.build_digest, self.path, self.python, dumps(list(self.packages)), self.seconds],
        )
