"""Rows about runs: experiments, the run record through its lifecycle, code snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlform.state.records import dumps

if TYPE_CHECKING:
    import duckdb

STATUSES = ("queued", "preparing", "running", "completed", "failed", "canceled", "timed_out")
FINISHED = frozenset({"completed", "failed", "canceled", "timed_out"})


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        found = con.execute("select 1 from experiments where name = ?", [self.name]).fetchone()
        if found is None:
            con.execute("insert into experiments values (?, now())", [self.name])


@dataclass(frozen=True, slots=True)
class RunRow:
    """The whole run record; written again at each step of its lifecycle."""

    id: str
    experiment: str
    name: str
    status: str
    compute: str
    run_dir: str
    runconfig: str | None = None
    parent_id: str | None = None
    display_name: str | None = None
    created_at: float | None = None  # seconds since the epoch
    started_at: float | None = None
    ended_at: float | None = None
    git_commit: str | None = None
    branch: str | None = None
    remote: str | None = None
    dirty: bool | None = None
    snapshot_id: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    environment: str | None = None
    env_digest: str | None = None
    command: str | None = None
    exit_code: int | None = None
    error: str | None = None
    log_tail: str | None = None
    digest: str | None = None
    reused_from: str | None = None  # a pipeline step that linked this earlier run's outputs

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        # A rewrite keeps the run's place in the order it was first recorded in.
        seq = con.execute(
            "select coalesce(max(seq) filter (where id = ?), max(seq) + 1, 1) from runs",
            [self.id],
        ).fetchone()
        con.execute("delete from runs where id = ?", [self.id])
        con.execute(
            "insert into runs values (?, ?, ?, ?, ?, ?, ?, coalesce(to_timestamp(?), now()), "
            "to_timestamp(?), to_timestamp(?), "
            "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.id,
                self.experiment,
                self.runconfig,
                self.parent_id,
                self.name,
                self.display_name,
                self.status,
                self.created_at,
                self.started_at,
                self.ended_at,
                self.duration,
                self.git_commit,
                self.branch,
                self.remote,
                self.dirty,
                self.snapshot_id,
                dumps(self.inputs),
                self.environment,
                self.env_digest,
                self.compute,
                self.command,
                self.exit_code,
                self.error,
                self.log_tail,
                self.digest,
                self.run_dir,
                apply_id,
                self.reused_from,
                seq[0] if seq else 1,
            ],
        )


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    id: str
    key: str
    files: int
    size: int

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        if con.execute("select 1 from snapshots where id = ?", [self.id]).fetchone() is None:
            con.execute(
                "insert into snapshots values (?, ?, ?, ?, now())",
                [self.id, self.key, self.files, self.size],
            )


@dataclass(frozen=True, slots=True)
class RunFiles:
    """Where a finished run's outputs and logs are kept: a manifest in the datastore."""

    run_id: str
    manifest: str

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute("delete from run_files where run_id = ?", [self.run_id])
        con.execute("insert into run_files values (?, ?)", [self.run_id, self.manifest])


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A run whose apply died before recording its end."""

    run_id: str
    reason: str

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute(
            "update runs set status = 'failed', error = ?, ended_at = now() where id = ?",
            [self.reason, self.run_id],
        )
