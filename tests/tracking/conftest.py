"""Run folders as mlform makes them, and real scripts run in them as mlform runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb
import pytest

from mlform.tracking.protocol import LOGS, OUTPUTS, run_environment

RUN_ID = "run-1"
Script = Callable[..., subprocess.CompletedProcess[str]]


def make_run_dir(parent: Path) -> Path:
    """A run folder as mlform creates it: outputs/, logs/, and the code snapshot to run in."""
    folder = parent / "runs" / RUN_ID
    for name in (OUTPUTS, LOGS, "snapshot"):
        (folder / name).mkdir(parents=True)
    return folder


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path)


def script_env(run_dir: Path | None) -> dict[str, str]:
    """This environment less any run's variables, plus those of `run_dir` if given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFORM_", "MLFLOW_"))}
    if run_dir is not None:
        env.update(run_environment(RUN_ID, run_dir))
    return env


def start_script(
    code: str, cwd: Path, run_dir: Path | None, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    path = cwd / "train.py"
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(path)],
        cwd=cwd,
        env={**script_env(run_dir), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def script(run_dir: Path) -> Script:
    """Run `code` as train.py in the run's snapshot folder, as mlform would; wait for it."""

    def run(
        code: str, *, cwd: Path | None = None, inside: bool = True
    ) -> subprocess.CompletedProcess[str]:
        process = start_script(code, cwd or run_dir / "snapshot", run_dir if inside else None)
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    return run


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """An in-memory database with the state's metrics table."""
    connection = duckdb.connect()
    connection.execute(
        "create table metrics (run_id varchar not null, key varchar not null, "
        "step bigint not null, ts bigint not null, value double)"
    )
    return connection


def metric_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int, float]]:
    """(run_id, key, step, value), in a stable order; timestamps checked separately."""
    return con.execute(
        "select run_id, key, step, value from metrics order by run_id, key, step"
    ).fetchall()
