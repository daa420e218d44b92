"""Read a finished (or running) run folder: what the SDK and MLflow recorded in it.

`read_run` gives the small records (params, tags, artifacts, child runs); `load_metrics`
moves the metric points into DuckDB, one bulk statement per file, because they can be
millions and must not pass through Python one by one.

How MLflow's runs map onto mlform's: the job's own MLflow run, created before the script
started and named by MLFLOW_RUN_ID (`mlform.tracking.mlflow_job`), *is* the mlform run (its
params, tags, metrics and artifacts merge into it); MLflow runs nested under it become
child runs, recursively, and so do runs the script opened apart from it. Without a job
run (a folder from before, or a run whose Python has no mlflow), the script's one
top-level MLflow run is the mlform run; a script that opened several top-level MLflow
runs (a loop of `with mlflow.start_run():`) gets each as a child instead, since no one of
them is the whole run. On a clash, what the SDK recorded wins over what MLflow did.
MLflow's own `mlflow.*` tags are left out: they repeat what mlform records itself (user,
source, run name, parent), and would collide between runs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlform.tracking import mlflow_store
from mlform.tracking.mlflow_job import job_run_id
from mlform.tracking.mlflow_store import MlflowRun
from mlform.tracking.protocol import (
    ARTIFACTS,
    CHILDREN,
    LOGS,
    METRIC_COLUMNS,
    METRICS,
    MLFLOW_DB,
    OUTPUTS,
    PARAMS,
    TAGS,
    read_mapping,
    read_run_info,
)

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str  # its path inside the run's artifacts, with `/`
    path: Path  # where the file is now
    size: int


@dataclass(frozen=True, slots=True)
class RunData:
    """One run's records. For the run mlform started, `id` and status are mlform's to know,
    so they are None unless the folder says (an offline run's run.json)."""

    id: str | None
    name: str | None
    status: str | None
    started_ms: int | None
    ended_ms: int | None
    params: dict[str, str]
    tags: dict[str, str]
    artifacts: tuple[Artifact, ...]
    children: tuple[RunData, ...]
    dir: Path | None  # the folder of a run the SDK recorded; None for an MLflow one
    mlflow_id: str | None = None  # the MLflow run shown as (or merged into) this run


def read_run(run_dir: Path) -> RunData:
    """Everything but the metric points, read from `run_dir` and its MLflow store."""
    own = _read_folder(run_dir)
    mlflow_runs = mlflow_store.read_runs(run_dir / MLFLOW_DB)
    merged, tops = _mlflow_roots(mlflow_runs, job_run_id(run_dir))
    kids = _mlflow_children(mlflow_runs)
    children = own.children + tuple(_from_mlflow(r, kids) for r in tops)
    if merged is None:
        return dataclasses.replace(own, children=children)
    return dataclasses.replace(
        own,
        params={**merged.params, **own.params},
        tags={**merged.tags, **own.tags},
        artifacts=_merge_artifacts(_mlflow_artifacts(merged), own.artifacts),
        children=children,
        mlflow_id=merged.id,
    )


def load_metrics(
    con: duckdb.DuckDBPyConnection, run_id: str, run_dir: Path, table: str = "metrics"
) -> int:
    """Insert the metric points of the run and of its children into `table`; return how many.

    `table` has the columns `run_id, key, step, ts, value`; a child's points carry the id
    `read_run` gives that child. Call it once the run's process has ended (`tail` is for
    a run still going): a line being written while DuckDB reads would fail the insert.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
        raise ValueError(f"not a table name: {table!r}")
    inserted = 0
    for owner, path in _metric_files(run_id, run_dir):
        inserted += _insert_csv(con, table, owner, path)
    return inserted + _insert_mlflow(con, table, run_id, run_dir)


def _read_folder(run_dir: Path) -> RunData:
    info = read_run_info(run_dir)
    return RunData(
        id=info.id if info else None,
        name=info.name if info else None,
        status=info.status if info else None,
        started_ms=info.started_ms if info else None,
        ended_ms=info.ended_ms if info else None,
        params=read_mapping(run_dir / PARAMS),
        tags=read_mapping(run_dir / TAGS),
        # outputs/ and logs/ are the job's too, kept under those names, as Azure ML does
        artifacts=_merge_artifacts(
            _walk("", run_dir / ARTIFACTS),
            _walk(OUTPUTS, run_dir / OUTPUTS),
            _walk(LOGS, run_dir / LOGS),
        ),
        children=tuple(_read_folder(folder) for folder in _child_folders(run_dir)),
        dir=run_dir,
    )


def _child_folders(run_dir: Path) -> list[Path]:
    """Child folders that hold a run.json, in the order the children started."""
    try:
        folders = [p for p in (run_dir / CHILDREN).iterdir() if p.is_dir()]
    except FileNotFoundError:
        return []
    infos = [(info, folder) for folder in folders if (info := read_run_info(folder))]
    return [folder for info, folder in sorted(infos, key=lambda i: (i[0].started_ms, i[1].name))]


def _metric_files(run_id: str, run_dir: Path) -> Iterator[tuple[str, Path]]:
    yield run_id, run_dir / METRICS
    for folder in _child_folders(run_dir):
        info = read_run_info(folder)
        if info is not None:
            yield from _metric_files(info.id, folder)


def _insert_csv(con: duckdb.DuckDBPyConnection, table: str, run_id: str, path: Path) -> int:
    complete = _complete_lines(path)
    if complete is None:
        return 0
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in METRIC_COLUMNS.items())
    try:
        found = con.execute(
            f"insert into {table} (run_id, key, step, ts, value) "
            "select ?, key, step, ts, value from read_csv(?, header = false, "
            "auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
            f"columns = {{{columns}}})",
            [run_id, str(complete)],
        ).fetchone()
    finally:
        if complete != path:
            complete.unlink()
    return int(found[0]) if found else 0


def _complete_lines(path: Path) -> Path | None:
    """`path`, or a copy without its torn last line (its writer was killed mid-write)."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            if size == 0:
                return None
            file.seek(size - 1)
            if file.read(1) == b"\n":
                return path
            file.seek(0)
            data = file.read(size)
    except FileNotFoundError:
        return None
    end = data.rfind(b"\n") + 1
    if end == 0:
        return None
    fd, name = tempfile.mkstemp(suffix=".csv", prefix="mlform-metrics-")
    with os.fdopen(fd, "wb") as copy:
        copy.write(data[:end])
    return Path(name)


_MAX_DOUBLE = 1.7976931348623157e308  # what MLflow stores for ±inf


def _insert_mlflow(con: duckdb.DuckDBPyConnection, table: str, run_id: str, run_dir: Path) -> int:
    db = run_dir / MLFLOW_DB
    runs = mlflow_store.read_runs(db)
    if not runs:
        return 0
    merged, _ = _mlflow_roots(runs, job_run_id(run_dir))
    owners = {r.id: r.id for r in runs}
    if merged is not None:
        owners[merged.id] = run_id
    rows = [row for row in mlflow_store.read_metrics(db) if row[0] in owners]
    if not rows:
        return 0
    # start-up: pyarrow, only when metrics are ingested
    import pyarrow  # type: ignore[import-untyped]

    ids, keys, steps, stamps, values, nans = zip(*rows, strict=True)
    points = pyarrow.table(
        {
            "run_id": [owners[i] for i in ids],
            "key": keys,
            "step": pyarrow.array(steps, pyarrow.int64()),
            "ts": pyarrow.array(stamps, pyarrow.int64()),
            "value": pyarrow.array(values, pyarrow.float64()),
            "is_nan": pyarrow.array(nans, pyarrow.int8()),
        }
    )
    view = "mlform_mlflow_points"
    con.register(view, points)
    try:
        found = con.execute(
            f"insert into {table} (run_id, key, step, ts, value) "
            "select run_id, key, step, ts, case "
            "when is_nan <> 0 then 'nan'::double "
            f"when value >= {_MAX_DOUBLE!r} then 'inf'::double "
            f"when value <= -{_MAX_DOUBLE!r} then '-inf'::double "
            f"else value end from {view}"
        ).fetchone()
    finally:
        con.unregister(view)
    return int(found[0]) if found else 0


def _mlflow_roots(
    runs: Sequence[MlflowRun], job_id: str | None
) -> tuple[MlflowRun | None, list[MlflowRun]]:
    """(the MLflow run merged into the mlform run, the runs that become its children)."""
    ids = {r.id for r in runs}
    tops = [r for r in runs if r.parent_id not in ids]
    job = next((r for r in runs if r.id == job_id), None)
    if job is not None:
        return job, [r for r in tops if r is not job] + [r for r in runs if r.parent_id == job.id]
    if len(tops) == 1:
        return tops[0], [r for r in runs if r.parent_id == tops[0].id]
    return None, tops


def _mlflow_children(runs: Sequence[MlflowRun]) -> dict[str, list[MlflowRun]]:
    kids: dict[str, list[MlflowRun]] = {}
    for run in runs:
        if run.parent_id is not None:
            kids.setdefault(run.parent_id, []).append(run)
    return kids


def _from_mlflow(run: MlflowRun, kids: dict[str, list[MlflowRun]]) -> RunData:
    return RunData(
        id=run.id,
        name=run.name,
        status=run.status,
        started_ms=run.started_ms,
        ended_ms=run.ended_ms,
        params=dict(run.params),
        tags=dict(run.tags),
        artifacts=_mlflow_artifacts(run),
        children=tuple(_from_mlflow(k, kids) for k in kids.get(run.id, [])),
        dir=None,
        mlflow_id=run.id,
    )


def _mlflow_artifacts(run: MlflowRun) -> tuple[Artifact, ...]:
    found: list[Artifact] = []
    for prefix, folder in run.artifact_dirs:
        found.extend(_walk(prefix, folder))
    return tuple(found)


def _merge_artifacts(*groups: Sequence[Artifact]) -> tuple[Artifact, ...]:
    by_name = {a.name: a for group in groups for a in group}
    return tuple(by_name[name] for name in sorted(by_name))


def _walk(prefix: str, folder: Path) -> list[Artifact]:
    """The files under `folder`, named by their path below it (after `prefix/`), by name."""
    found = []
    for root, _, files in os.walk(folder):
        base = Path(root)
        for name in files:
            path = base / name
            relative = path.relative_to(folder).as_posix()
            named = f"{prefix}/{relative}" if prefix else relative
            found.append(Artifact(named, path, path.stat().st_size))
    return sorted(found, key=lambda artifact: artifact.name)


def final_metrics(run_id: str, run_dir: Path) -> dict[str, float]:
    """The last value of each metric the run itself logged (highest step, then latest
    time), with the SDK and MLflow points read the same way ingest reads them."""
    # start-up: DuckDB, only when metrics are ingested
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(
            "create table points "
            "(run_id varchar, key varchar, step bigint, ts bigint, value double)"
        )
        load_metrics(con, run_id, run_dir, "points")
        rows = con.execute(
            "select key, arg_max(value, (step, ts)) from points where run_id = ? group by key",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    return {str(key): float(value) for key, value in rows if value is not None}
