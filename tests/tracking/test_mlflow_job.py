"""The job's own MLflow run, created with the real mlflow of the run's Python (or not
at all when that Python has none), and read back without importing mlflow."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from mlform.tracking import mlflow_job
from mlform.tracking.ingest import read_run
from mlform.tracking.mlflow_store import read_runs
from mlform.tracking.protocol import MLFLOW_DB
from tests.tracking.conftest import script_env


def python_on_path(folder: Path, body: str) -> str:
    """A PATH whose `python` is this interpreter, run as `body` says."""
    folder.mkdir()
    python = folder / "python"
    python.write_text(f"#!/bin/sh\n{body}\n")
    python.chmod(0o755)
    return f"{folder}:/usr/bin:/bin"


def test_the_job_run_is_created_in_the_runs_store(run_dir: Path) -> None:
    env = script_env(run_dir)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    job = mlflow_job.create(env, run_dir / "snapshot", run_dir, "iris", "train_1")
    assert job is not None
    assert job.environment() == {
        "MLFLOW_RUN_ID": job.run_id,
        "MLFLOW_EXPERIMENT_ID": job.experiment_id,
        "MLFLOW_EXPERIMENT_NAME": "iris",
    }
    (stored,) = read_runs(run_dir / MLFLOW_DB)
    assert (stored.id, stored.name, stored.status) == (job.run_id, "train_1", "running")
    assert mlflow_job.job_run_id(run_dir) == job.run_id
    assert read_run(run_dir).mlflow_id == job.run_id


def test_a_python_without_mlflow_gets_no_job_run(run_dir: Path, tmp_path: Path) -> None:
    env = script_env(run_dir)
    # -S: this interpreter without its site-packages, so without mlflow
    env["PATH"] = python_on_path(tmp_path / "bin", f'exec {sys.executable} -S "$@"')
    assert mlflow_job.create(env, run_dir / "snapshot", run_dir, "iris", "train_1") is None
    assert not (run_dir / MLFLOW_DB).exists()
    assert mlflow_job.job_run_id(run_dir) is None


def test_a_broken_mlflow_says_what_it_printed(run_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "site" / "mlflow"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        textwrap.dedent("""
        raise ImportError("mlflow needs protobuf>=5")
        """)
    )
    env = script_env(run_dir)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(tmp_path / "site")
    with pytest.raises(mlflow_job.JobRunFailed) as failed:
        mlflow_job.create(env, run_dir / "snapshot", run_dir, "iris", "train_1")
    assert str(failed.value) == (
        f"{Path(sys.executable).parent / 'python'} could not create the job's MLflow run: "
        "ImportError: mlflow needs protobuf>=5"
    )
