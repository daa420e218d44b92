"""A run folder into DuckDB: exact rows, odd keys, odd values, and what a crash leaves."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from mlform.tracking.ingest import load_metrics, read_run
from mlform.tracking.protocol import METRICS
from mlform.tracking.sdk import Run
from tests.tracking.conftest import metric_rows


def test_keys_and_values_come_back_exactly(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    run = Run("r", tmp_path / "r")
    for key in ("a,b", 'say "hi"', " padded ", "val/loss", "ünï"):
        run.log(key, 1.5)
    run.log("big", 10**20, step=2**40)
    for value in (float("nan"), float("inf"), float("-inf"), 1e-300):
        run.log("odd", value)
    run.flush()

    assert load_metrics(con, "r", run.dir) == 10
    rows = con.execute(
        "select key, step, value::varchar from metrics order by key, step"
    ).fetchall()
    assert rows == [
        (" padded ", 0, "1.5"),
        ("a,b", 0, "1.5"),
        ("big", 2**40, "1e+20"),
        ("odd", 0, "nan"),
        ("odd", 1, "inf"),
        ("odd", 2, "-inf"),
        ("odd", 3, "1e-300"),
        ('say "hi"', 0, "1.5"),
        ("val/loss", 0, "1.5"),
        ("ünï", 0, "1.5"),
    ]


def test_a_line_torn_by_a_killed_writer_is_skipped(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    run = Run("r", tmp_path / "r")
    run.log("loss", 0.5)
    run.flush()
    with (run.dir / METRICS).open("a") as file:
        file.write("loss,1,17")  # the process died here
    assert load_metrics(con, "r", run.dir) == 1
    assert metric_rows(con) == [("r", "loss", 0, 0.5)]
    assert (run.dir / METRICS).read_text().endswith("loss,1,17")  # the folder is left as it was


def test_a_run_that_logged_nothing(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / METRICS).touch()
    assert load_metrics(con, "r", folder) == 0
    assert load_metrics(con, "r", tmp_path / "missing") == 0
    data = read_run(folder)
    assert (data.params, data.tags, data.artifacts, data.children) == ({}, {}, (), ())


def test_the_table_name_is_checked(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="not a table name"):
        load_metrics(con, "r", tmp_path, table="metrics; drop table metrics")


def test_a_torn_params_line_is_skipped(tmp_path: Path) -> None:
    run = Run("r", tmp_path / "r")
    run.log_params({"lr": 0.1})
    with (run.dir / "params.jsonl").open("a") as file:
        file.write('{"lr": "0.')
    assert read_run(run.dir).params == {"lr": "0.1"}
