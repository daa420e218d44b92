"""A run folder written into a real state schema, in the way the executor writes records."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from mlform.state.migrations import MIGRATIONS
from mlform.state.runs import RunRow
from mlform.tracking.protocol import RunInfo, write_run_info
from mlform.tracking.record import TrackingRecord
from mlform.tracking.sdk import Run


@pytest.fixture
def state() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for migration in MIGRATIONS:
        con.execute(migration.sql)
    return con


def test_a_run_and_its_children_land_in_the_state(
    tmp_path: Path, state: duckdb.DuckDBPyConnection
) -> None:
    run = Run("r1", tmp_path / "r1")
    run.log("loss", 0.5)
    run.log_params({"lr": 0.1})
    (tmp_path / "model.pkl").write_bytes(b"12345")
    run.upload(tmp_path / "model.pkl")
    with run.child("fold-1") as fold:
        fold.set_tags({"fold": 1})
        with fold.child("epoch-1") as epoch:
            epoch.log("loss", 0.25)
    cut = run.dir / "children" / "cut"
    cut.mkdir()
    write_run_info(cut, RunInfo("c9", "cut", "running", 1_000))  # its process was killed
    run.flush()  # as the script's exit does
    RunRow("r1", "exp", "train", "canceled", "local", str(run.dir)).write(state, "a1")

    for _ in range(2):  # a second ingest replaces the first
        TrackingRecord("r1", run.dir).write(state, "a1")

    assert state.execute("select * from params").fetchall() == [("r1", "lr", "0.1")]
    assert state.execute("select * from tags").fetchall() == [(fold.id, "fold", "1")]
    assert state.execute("select * from artifacts").fetchall() == [("r1", "model.pkl", 5)]
    assert state.execute("select run_id, key, value from metrics order by value").fetchall() == [
        (epoch.id, "loss", 0.25),
        ("r1", "loss", 0.5),
    ]
    assert state.execute(
        "select id, parent_id, name, status, experiment, compute, run_dir from runs "
        "where id <> 'r1' order by name"
    ).fetchall() == [
        ("c9", "r1", "cut", "canceled", "exp", "local", str(cut)),
        (epoch.id, fold.id, "epoch-1", "completed", "exp", "local", str(epoch.dir)),
        (fold.id, "r1", "fold-1", "completed", "exp", "local", str(fold.dir)),
    ]
