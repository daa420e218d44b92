"""MLflow scripts, unchanged, logging with the real mlflow into a run mlform started.

The scripts run in their own processes, as mlform runs them; this process reads what they
logged without ever importing mlflow.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from mlform.tracking.ingest import load_metrics, read_run
from tests.tracking.conftest import RUN_ID, make_run_dir, metric_rows, start_script

MANUAL = """
import mlflow, mlform

mlflow.log_param("alpha", 0.5)
mlflow.log_params({"l1_ratio": 0.1, "fold_count": 1})
mlflow.set_tag("team", "vision")
for step in range(3):
    mlflow.log_metric("rmse", 1.0 / (step + 1), step=step)
mlflow.log_metric("odd", float("nan"))
mlflow.log_metric("odd", float("-inf"), step=1)
with open("report.txt", "w") as file:
    file.write("fine")
mlflow.log_artifact("report.txt")
mlflow.log_artifact("report.txt", artifact_path="reports")
with mlflow.start_run(run_name="fold-1", nested=True):
    mlflow.log_param("fold", 1)
    mlflow.log_metric("rmse", 0.25)
run = mlform.get_run()
run.log("sdk", 1.0)
run.log_params({"fold_count": "2"})
"""

AUTOLOG = """
import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

mlflow.autolog()
X, y = load_iris(return_X_y=True)
LogisticRegression(max_iter=200).fit(X, y)
"""


@dataclass(frozen=True)
class Finished:
    run_dir: Path
    code: int
    err: str


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finished]:
    """Both scripts, run at the same time: importing mlflow and sklearn takes seconds."""
    started = {}
    for name, code in (("manual", MANUAL), ("autolog", AUTOLOG)):
        run_dir = make_run_dir(tmp_path_factory.mktemp(name))
        started[name] = (run_dir, start_script(code, run_dir / "snapshot", run_dir))
    done = {}
    for name, (run_dir, process) in started.items():
        with process:
            _, err = process.communicate(timeout=300)
        done[name] = Finished(run_dir, process.returncode, err)
    return done


def test_mlflow_calls_land_on_the_mlform_run(
    finished: dict[str, Finished], con: duckdb.DuckDBPyConnection
) -> None:
    ran = finished["manual"]
    assert ran.code == 0, ran.err
    data = read_run(ran.run_dir)
    assert data.params == {"alpha": "0.5", "l1_ratio": "0.1", "fold_count": "2"}
    assert data.tags == {"team": "vision"}
    assert [(a.name, a.size) for a in data.artifacts] == [
        ("report.txt", 4),
        ("reports/report.txt", 4),
    ]
    (fold,) = data.children
    assert (fold.name, fold.status, fold.params, fold.dir) == (
        "fold-1",
        "completed",
        {"fold": "1"},
        None,
    )

    assert load_metrics(con, RUN_ID, ran.run_dir) == 7
    rows = metric_rows(con)
    assert math.isnan(rows.pop(1)[3])
    assert rows == sorted(
        [
            (RUN_ID, "odd", 1, -math.inf),
            (RUN_ID, "rmse", 0, 1.0),
            (RUN_ID, "rmse", 1, 0.5),
            (RUN_ID, "rmse", 2, 1.0 / 3),
            (RUN_ID, "sdk", 0, 1.0),
            (str(fold.id), "rmse", 0, 0.25),
        ]
    )
    assert "mlflow" not in sys.modules


def test_sklearn_autolog_lands_on_the_mlform_run(
    finished: dict[str, Finished], con: duckdb.DuckDBPyConnection
) -> None:
    ran = finished["autolog"]
    assert ran.code == 0, ran.err
    data = read_run(ran.run_dir)
    assert {k: data.params[k] for k in ("C", "max_iter", "solver")} == {
        "C": "1.0",
        "max_iter": "200",
        "solver": "lbfgs",
    }
    assert data.tags["estimator_name"] == "LogisticRegression"
    assert {"model/MLmodel", "estimator.html"} <= {a.name for a in data.artifacts}
    assert data.children == ()

    load_metrics(con, RUN_ID, ran.run_dir)
    (accuracy,) = con.execute(
        "select value from metrics where run_id = ? and key = 'training_accuracy_score'",
        [RUN_ID],
    ).fetchall()
    assert 0.9 < accuracy[0] <= 1.0
    assert "mlflow" not in sys.modules
