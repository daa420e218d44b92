"""Read what MLflow logged into a run's SQLite store, with `sqlite3`, never importing mlflow.

mlform must not import mlflow (heavy, and its warnings would be mlform's), and the store
is plain SQLite: these few queries over MLflow's tables (`runs`, `params`, `tags`,
`metrics`, `logged_models`) are its whole contract with mlform. A store that is missing,
half-created (read while MLflow builds its tables) or locked reads as empty.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import pathname2url

STATUSES = {
    "RUNNING": "running",
    "SCHEDULED": "queued",
    "FINISHED": "completed",
    "FAILED": "failed",
    "KILLED": "canceled",
}
"""MLflow's run statuses in mlform's words (`mlform.state.runs.STATUSES`)."""

PARENT_TAG = "mlflow.parentRunId"
SYSTEM_TAG_PREFIX = "mlflow."


@dataclass
class MlflowRun:
    id: str
    name: str
    status: str
    started_ms: int | None
    ended_ms: int | None
    parent_id: str | None
    artifact_dirs: list[tuple[str, Path]] = field(default_factory=list)
    """(prefix, folder): the run's own artifacts under "", each logged model under its name."""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def connect(db: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection, or None when there is no store to read."""
    if not db.is_file():
        yield None
        return
    con = sqlite3.connect(f"file:{pathname2url(str(db.absolute()))}?mode=ro", uri=True)
    try:
        yield con
    finally:
        con.close()


def read_runs(db: Path) -> list[MlflowRun]:
    """The active runs in the store, oldest first, with their params, tags and artifacts."""
    with connect(db) as con:
        if con is None:
            return []
        try:
            return _read_runs(con)
        except sqlite3.OperationalError:
            return []


def _read_runs(con: sqlite3.Connection) -> list[MlflowRun]:
    runs: dict[str, MlflowRun] = {}
    rows = con.execute(
        "select run_uuid, name, status, start_time, end_time, artifact_uri from runs "
        "where lifecycle_stage = 'active' order by start_time, run_uuid"
    )
    for run_id, name, status, started, ended, artifact_uri in rows:
        run = MlflowRun(
            run_id, name or run_id, STATUSES.get(status, "running"), started, ended, None
        )
        local = _local_path(artifact_uri)
        if local is not None:
            run.artifact_dirs.append(("", local))
        runs[run_id] = run
    for run_id, key, value in con.execute("select run_uuid, key, value from params"):
        if run_id in runs:
            runs[run_id].params[key] = value
    for run_id, key, value in con.execute("select run_uuid, key, value from tags"):
        if run_id not in runs:
            continue
        if key == PARENT_TAG:
            runs[run_id].parent_id = value
        elif not key.startswith(SYSTEM_TAG_PREFIX):
            runs[run_id].tags[key] = value
    if _has_table(con, "logged_models"):
        # MLflow 3 keeps a model apart from the run that logged it; MLflow 2 kept it in the
        # run's artifacts under its name. Showing it there keeps both the same for users.
        models = con.execute(
            "select source_run_id, name, artifact_location from logged_models "
            "where lifecycle_stage = 'active' order by creation_timestamp_ms"
        )
        for run_id, name, location in models:
            local = _local_path(location)
            if run_id in runs and local is not None:
                runs[run_id].artifact_dirs.append((name, local))
    return list(runs.values())


def read_metrics(db: Path) -> list[tuple[str, str, int, int, float | None, int]]:
    """Every metric point: (run id, key, step, timestamp ms, value, is_nan)."""
    with connect(db) as con:
        if con is None:
            return []
        try:
            return con.execute(
                "select run_uuid, key, step, timestamp, value, is_nan from metrics"
            ).fetchall()
        except sqlite3.OperationalError:
            return []


def _has_table(con: sqlite3.Connection, name: str) -> bool:
    found = con.execute("select 1 from sqlite_master where type = 'table' and name = ?", [name])
    return found.fetchone() is not None


def _local_path(uri: str | None) -> Path | None:
    """The folder an artifact location names, if it is on this machine."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # a plain path, or C:\ on Windows
        return Path(uri)
    return None
