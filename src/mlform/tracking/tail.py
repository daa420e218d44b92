"""Follow what a running script appends: new metric points and log lines, for live progress.

Each call returns only whole lines written since the previous call; a line still being
written is left for the next call, so a reader never shows half a record. Live progress
reads only the run's own metrics (not its children's): enough to show how it goes, and
what a sweep's early termination acts on. The run's own are those the SDK writes to its
metrics.csv and those MLflow logs to the job's MLflow run (the SQLite store in its
folder, read as it is written).
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import NamedTuple

from mlform.tracking import mlflow_store
from mlform.tracking.mlflow_job import job_run_id
from mlform.tracking.protocol import METRICS, MLFLOW_DB

MAX_READ = 8 * 1024 * 1024
"""The most one call reads, so a reader that fell behind catches up in bounded steps."""


class LineTail:
    """The complete lines appended to `path` since the last call to `lines`."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset

    def lines(self) -> list[str]:
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                data = file.read(MAX_READ)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if end == 0:
            if len(data) < MAX_READ:
                return []
            end = len(data)  # one line longer than a whole read: hand it over in pieces
        self.offset += end
        text = data[:end].decode("utf-8", errors="replace")
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        return [line.removesuffix("\r") for line in lines]


class MetricPoint(NamedTuple):
    key: str
    step: int
    ts: int  # milliseconds since the epoch
    value: float


class Tail:
    """The metric points a run logged since the last call to `points` or `latest`."""

    def __init__(self, run_dir: Path) -> None:
        self._tail = LineTail(run_dir / METRICS)
        self._mlflow = _MlflowTail(run_dir)

    def points(self) -> list[MetricPoint]:
        found: list[MetricPoint] = []
        for row in csv.reader(self._tail.lines()):
            try:
                key, step, ts, value = row
                found.append(MetricPoint(key, int(step), int(ts), float(value)))
            except ValueError:
                continue  # not a point (a line cut by a killed writer)
        return found + self._mlflow.points()

    def latest(self) -> dict[str, float]:
        """The last value of each key among the new points."""
        return {point.key: point.value for point in self.points()}


class _MlflowTail:
    """The points MLflow logged to the job's own MLflow run since the last look: the rows
    of its store's metrics table past the last one read (SQLite's rowids grow)."""

    def __init__(self, run_dir: Path) -> None:
        self._db = run_dir / MLFLOW_DB
        self._dir = run_dir
        self._run: str | None = None
        self._last = 0

    def points(self) -> list[MetricPoint]:
        if not self._db.is_file():
            return []
        if self._run is None:
            self._run = job_run_id(self._dir)
            if self._run is None:
                return []  # no job run: MLflow logs into runs of the script's own
        try:
            with mlflow_store.connect(self._db) as con:
                if con is None:
                    return []
                rows = con.execute(
                    "select rowid, key, step, timestamp, value, is_nan from metrics "
                    "where run_uuid = ? and rowid > ? order by rowid",
                    [self._run, self._last],
                ).fetchall()
        except sqlite3.Error:  # not created yet, or busy: looked at again next time
            return []
        if rows:
            self._last = int(rows[-1][0])
        nan = float("nan")
        return [
            MetricPoint(str(key), int(step), int(ts), nan if is_nan else float(value))
            for _, key, step, ts, value, is_nan in rows
            if value is not None or is_nan
        ]
