"""The AutoML driver as a job runs it (`python -m mlform.automl.driver`), outside any
workspace: a regression over a CSV file, and what a user's mistake says."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import mlform
from mlform.automl import job

SRC = str(Path(mlform.__file__).resolve().parents[1])


def drive(cwd: Path, settings: dict[str, object], data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFORM_")}
    env["PYTHONPATH"] = SRC
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mlform.automl.driver",
            "--settings",
            json.dumps(settings),
            "--training-data",
            str(data),
            "--best-model",
            str(cwd / "best_model"),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_regression_is_searched_recorded_and_saved_as_an_mlflow_model(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = ["x1,x2,target"]
    for _ in range(300):
        x1, x2 = rng.uniform(0, 10), rng.uniform(0, 10)
        rows.append(f"{x1:.3f},{x2:.3f},{3 * x1 - 2 * x2 + rng.gauss(0, 0.1):.3f}")
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    settings = job.parse(
        {
            "task": "regression",
            "primary_metric": "r2_score",
            "target_column_name": "target",
            "training_data": {"path": "table.csv", "type": "uri_file"},
            "validation_data_size": 0.25,
            "limits": {"timeout_minutes": 0.5, "max_trials": 6},
            "training": {"allowed_training_algorithms": ["ElasticNet", "LightGBM"]},
        }
    ).settings()
    done = drive(tmp_path, settings, tmp_path / "table.csv")
    assert done.returncode == 0, done.stderr
    assert "best ElasticNet" in done.stdout or "best LightGBM" in done.stdout, done.stdout
    (run,) = (tmp_path / ".mlform-offline" / "runs").iterdir()
    children = sorted((run / "children").iterdir())
    assert [c.name for c in children] == [f"trial{i}" for i in range(6)]
    for child in children:
        params = json.loads((child / "params.jsonl").read_text().splitlines()[0])
        assert params["algorithm"] in ("ElasticNet", "LightGBM")
        keys = {line.split(",")[0] for line in (child / "metrics.csv").read_text().splitlines()}
        assert {"r2_score", "normalized_root_mean_squared_error", "spearman_correlation"} <= keys
    # a linear target: the best configuration explains it nearly all
    best = {
        line.split(",")[0]: float(line.split(",")[3])
        for line in (run / "metrics.csv").read_text().splitlines()
    }
    assert best["r2_score"] > 0.95, best
    check = (
        "import mlflow.pyfunc, pandas as pd; "
        f"m = mlflow.pyfunc.load_model({str(tmp_path / 'best_model')!r}); "
        "print(float(m.predict(pd.DataFrame({'x1': [5.0], 'x2': [1.0]}))[0]))"
    )
    predicted = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    assert abs(float(predicted.stdout.strip().splitlines()[-1]) - 13.0) < 1.5


def test_a_missing_target_column_is_said_without_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "MLTable").write_text("paths:\n  - file: ./t.csv\n")
    (folder / "t.csv").write_text("a,b\n1,2\n")
    settings = job.parse(
        {"task": "classification", "target_column_name": "label", "training_data": {"path": "."}}
    ).settings()
    done = drive(tmp_path, settings, folder)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "automl: training_data has no column 'label' (target_column_name); its columns: a, b"
    )
    assert "Traceback" not in done.stderr


def test_a_classification_validates_on_its_validation_table_with_weights(
    tmp_path: Path,
) -> None:
    rng = random.Random(5)
    header = "a,b,weight,label"
    for name, rows in (("train", 240), ("valid", 80)):
        folder = tmp_path / name
        folder.mkdir()
        lines = [header]
        for _ in range(rows):
            a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
            lines.append(f"{a:.3f},{b:.3f},{rng.choice([1, 2])},{'up' if a > b else 'down'}")
        (folder / "rows.csv").write_text("\n".join(lines) + "\n")
        (folder / "MLTable").write_text(
            "paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited:\n"
            "      delimiter: ','\n      header: all_files_same_headers\n"
        )
    settings = job.parse(
        {
            "task": "classification",
            "primary_metric": "AUC_weighted",
            "target_column_name": "label",
            "weight_column_name": "weight",
            "training_data": {"path": "train", "type": "mltable"},
            "validation_data": {"path": "valid", "type": "mltable"},
            "limits": {"timeout_minutes": 0.5, "max_trials": 4, "max_concurrent_trials": 3},
            "training": {"allowed_training_algorithms": ["LogisticRegression"]},
        }
    ).settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFORM_")}
    done = subprocess.run(
        [
            sys.executable, "-m", "mlform.automl.driver", "--settings", json.dumps(settings),
            "--training-data", str(tmp_path / "train"),
            "--validation-data", str(tmp_path / "valid"),
            "--best-model", str(tmp_path / "best_model"),
        ],
        cwd=tmp_path, env={**env, "PYTHONPATH": SRC}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # the rows of both tables, by their columns: 240 to train on, the weights not a feature
    assert "over 240 rows, by AUC_weighted" in done.stdout, done.stdout
    assert "max_concurrent_trials 3: configurations are evaluated one at a time" in done.stdout
    (run,) = (tmp_path / ".mlform-offline" / "runs").iterdir()
    best = {
        line.split(",")[0]: float(line.split(",")[3])
        for line in (run / "metrics.csv").read_text().splitlines()
    }
    assert best["AUC_weighted"] > 0.95, best  # a linear rule, learnt
    signature = (tmp_path / "best_model" / "MLmodel").read_text()
    assert '"name": "a"' in signature and '"name": "weight"' not in signature


def test_an_environment_without_flaml_is_told_what_to_install(tmp_path: Path) -> None:
    # the machine's own python3, which has none of FLAML, scikit-learn, pandas or MLflow
    settings = job.parse(
        {"task": "regression", "target_column_name": "y", "training_data": {"path": "."}}
    ).settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFORM_", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [
            "/usr/bin/python3", "-m", "mlform.automl.driver", "--settings", json.dumps(settings),
            "--training-data", str(tmp_path), "--best-model", str(tmp_path / "best_model"),
        ],
        cwd=tmp_path, env={**env, "PYTHONPATH": SRC}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    said = done.stderr.strip().splitlines()[-1]
    assert said.startswith("automl: flaml, sklearn, pandas, mlflow not installed in the Python")
    assert said.endswith(
        "add flaml, scikit-learn, pandas and mlflow to the job's environment, or, for a job "
        "without one, pip install 'mlform[automl]'"
    )
