"""Reading recorded runs: find them, their metrics, params and tags, side by side."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from mlform.errors import MlformError, NotFound
from mlform.state.store import Store

COLUMNS = (
    "id, experiment, runconfig, parent_id, name, display_name, status, "
    "epoch(created_at), epoch(started_at), epoch(ended_at), duration, git_commit, branch, "
    "remote, dirty, snapshot_id, inputs, environment, compute, command, exit_code, error, "
    "log_tail, run_dir"
)


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    experiment: str
    runconfig: str | None
    parent_id: str | None
    name: str
    display_name: str | None
    status: str
    created_at: float | None
    started_at: float | None
    ended_at: float | None
    duration: float | None
    commit: str | None
    branch: str | None
    remote: str | None
    dirty: bool | None
    snapshot_id: str | None
    inputs: Mapping[str, str]
    environment: str | None
    compute: str
    command: str | None
    exit_code: int | None
    error: str | None
    log_tail: str | None
    run_dir: str
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)  # the last value of each key


def _run(row: Sequence[Any]) -> Run:
    values = list(row)
    values[16] = json.loads(values[16] or "{}")
    return Run(*values)


def list_runs(
    store: Store,
    *,
    experiment: str | None = None,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
    runconfig: str | None = None,
    limit: int | None = None,
) -> list[Run]:
    """Runs, newest first, filtered; each with its params, tags and final metrics."""
    sql = f"select {COLUMNS} from runs where true"
    params: list[Any] = []
    if experiment:
        sql += " and experiment = ?"
        params.append(experiment)
    if status:
        sql += " and status = ?"
        params.append(status)
    if runconfig:
        sql += " and runconfig = ?"
        params.append(runconfig if "/" in runconfig else f"runconfig/{runconfig}")
    for key, value in (tags or {}).items():
        sql += " and id in (select run_id from tags where key = ? and value = ?)"
        params.extend([key, value])
    sql += " order by created_at desc, seq desc"
    if limit:
        sql += f" limit {int(limit)}"
    runs = [_run(row) for row in store.query(sql, params)]
    return _with_details(store, runs)


def from_rows(store: Store, rows: Sequence[Sequence[Any]]) -> list[Run]:
    """Runs from rows of `select COLUMNS from runs …`, each with its params, tags and
    final metrics."""
    return _with_details(store, [_run(row) for row in rows])


def _with_details(store: Store, runs: list[Run]) -> list[Run]:
    if not runs:
        return runs
    ids = [r.id for r in runs]
    marks = ", ".join("?" for _ in ids)
    params: dict[str, dict[str, str]] = {}
    tags: dict[str, dict[str, str]] = {}
    finals: dict[str, dict[str, float]] = {}
    for run_id, key, value in store.query(
        f"select run_id, key, value from params where run_id in ({marks})", ids
    ):
        params.setdefault(run_id, {})[key] = value
    for run_id, key, value in store.query(
        f"select run_id, key, value from tags where run_id in ({marks})", ids
    ):
        tags.setdefault(run_id, {})[key] = value
    for run_id, key, value in store.query(
        "select run_id, key, arg_max(value, (step, ts)) from metrics "
        f"where run_id in ({marks}) group by run_id, key",
        ids,
    ):
        finals.setdefault(run_id, {})[key] = value
    return [
        replace(
            r, params=params.get(r.id, {}), tags=tags.get(r.id, {}), metrics=finals.get(r.id, {})
        )
        for r in runs
    ]


def find(store: Store, ref: str) -> Run:
    """A run by id, a runconfig or pipeline name (its latest run), or a unique id prefix."""
    rows = store.query(f"select {COLUMNS} from runs where id = ?", [ref])
    if not rows:
        rows = store.query(
            f"select {COLUMNS} from runs where runconfig in (?, ?) and parent_id is null "
            "order by created_at desc, seq desc limit 1",
            [f"runconfig/{ref}", f"pipeline/{ref}"],
        )
    if not rows:
        rows = store.query(
            f"select {COLUMNS} from runs where starts_with(id, ?) "
            "order by created_at desc, seq desc",
            [ref],
        )
        if len({r[0] for r in rows}) > 1:
            shown = ", ".join(r[0] for r in rows[:5])
            raise MlformError(f"'{ref}' matches several runs ({shown}); give more of the id")
    if not rows:
        raise NotFound(f"no run '{ref}'; `mlform runs list` shows the recorded runs")
    return _with_details(store, [_run(rows[0])])[0]


def children(store: Store, run_id: str) -> list[Run]:
    rows = store.query(
        f"select {COLUMNS} from runs where parent_id = ? order by created_at, seq", [run_id]
    )
    return _with_details(store, [_run(r) for r in rows])


def metric_history(
    store: Store, run_id: str, key: str | None = None
) -> list[tuple[str, int, int, float]]:
    """(key, step, timestamp ms, value) in step order."""
    sql = "select key, step, ts, value from metrics where run_id = ?"
    params: list[Any] = [run_id]
    if key is not None:
        sql += " and key = ?"
        params.append(key)
    # DuckDB hands back Python ints and floats already: no per-row conversion
    rows = store.query(sql + " order by key, step, ts", params)
    return cast("list[tuple[str, int, int, float]]", rows)


def artifacts(store: Store, run_id: str) -> list[tuple[str, int]]:
    return [
        (r[0], int(r[1]))
        for r in store.query(
            "select path, size from artifacts where run_id = ? order by path", [run_id]
        )
    ]


@dataclass(frozen=True, slots=True)
class ExperimentSummary:
    name: str
    runs: int
    last_run: str | None
    last_status: str | None


def experiments(store: Store) -> list[ExperimentSummary]:
    rows = store.query(
        "select e.name, count(r.id), arg_max(r.id, r.created_at), arg_max(r.status, r.created_at) "
        "from experiments e left join runs r on r.experiment = e.name and r.parent_id is null "
        "group by e.name order by e.name"
    )
    return [ExperimentSummary(r[0], int(r[1]), r[2], r[3]) for r in rows]
