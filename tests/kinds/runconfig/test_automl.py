"""AutoML jobs end to end through the CLI: an Azure ML AutoML job file over a generated
table searched by FLAML within its timeout, each configuration a child run, the best
model registered through the gate as an MLflow model and served from an endpoint."""

from __future__ import annotations

import importlib.metadata
import json
import random
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from mlform.state.store import Store
from tests.conftest import Ran, stop_endpoints

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

TIMEOUT_MINUTES = 0.5


def automl_file(body: str) -> str:
    """An AutoML job's file as Azure ML's documentation writes them."""
    return (
        "$schema: https://azuremlschemas.azureedge.net/latest/autoMLJob.schema.json\n"
        "type: automl\n" + textwrap.dedent(body).lstrip("\n")
    )


def table(rows: int, seed: int) -> str:
    """A generated classification table: `label` is yes when a + 2b > 1, whatever the
    noise column and the colour say."""
    rng = random.Random(seed)
    lines = ["a,b,noise,colour,label"]
    for _ in range(rows):
        a, b, noise = rng.uniform(-2, 2), rng.uniform(-2, 2), rng.gauss(0, 1)
        colour = rng.choice(["red", "green", "blue"])
        lines.append(f"{a:.4f},{b:.4f},{noise:.4f},{colour},{'yes' if a + 2 * b > 1 else 'no'}")
    return "\n".join(lines) + "\n"


# Azure ML's MLTable file for a CSV, as its documentation writes it
MLTABLE = """
paths:
  - file: ./points.csv
transformations:
  - read_delimited:
      delimiter: ','
      encoding: 'ascii'
"""

# Azure's init()/run() contract: the registered MLflow model's pickled model, loaded
# where FLAML and the learners' libraries are installed
SCORE = """
import json, os, pickle
from pathlib import Path

import pandas as pd

model = None


def init():
    global model
    folder = Path(os.environ["AZUREML_MODEL_DIR"]) / "best_model"  # as Azure mounts it
    with (folder / "model.pkl").open("rb") as handle:
        model = pickle.load(handle)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    return model.predict(pd.DataFrame(rows)).tolist()
"""


def _pinned(*packages: str) -> str:
    """The packages at the versions the tests run with, as an environment's pip list."""
    return "".join(f"  - {p}=={importlib.metadata.version(p)}\n" for p in packages)


@pytest.fixture
def points(make_workspace: Make) -> Iterator[Path]:
    root = make_workspace(
        {
            "workspace.yml": "name: points\n",
            "data/points/points.csv": table(400, seed=7),
            "data/points/MLTable": MLTABLE,
            "runconfigs/find.yml": automl_file(
                f"""
                experiment_name: points-automl
                description: Find the best classifier of the generated points.
                compute: local
                task: classification
                primary_metric: accuracy
                log_verbosity: info
                target_column_name: label
                training_data:
                  path: ../data/points
                  type: mltable
                n_cross_validations: 3
                limits:
                  timeout_minutes: {TIMEOUT_MINUTES}
                  max_trials: 1000
                  max_concurrent_trials: 1
                  enable_early_termination: false
                training:
                  blocked_training_algorithms: [KNN, XGBoostClassifier, LinearSVM]
                register_model:
                  name: points-best
                  path: best_model
                  type: mlflow_model
                  when: accuracy >= 0.9
                """
            ),
            "environments/scoring.yml": "name: scoring\npip:\n"
            + _pinned(
                "flaml", "scikit-learn", "pandas", "pyarrow", "lightgbm", "xgboost-cpu", "numpy"
            ),
            "score/score.py": SCORE,
            "endpoints/points.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
                name: points
                auth_mode: key
                deployments:
                  - name: blue
                    model: azureml:points-best@latest
                    code_configuration:
                      code: ../score
                      scoring_script: score.py
                    environment: azureml:scoring@latest
                """,
            "request.json": json.dumps(
                {
                    "data": [
                        {"a": 1.5, "b": 1.5, "noise": 0.0, "colour": "red"},
                        {"a": -1.5, "b": -1.5, "noise": 0.3, "colour": "blue"},
                        {"a": 0.0, "b": 1.8, "noise": -0.2, "colour": "green"},
                    ]
                }
            ),
        }
    )
    yield root
    stop_endpoints(root)


def test_an_automl_job_finds_a_model_within_its_timeout_and_serves_it(
    cli: Cli, points: Path
) -> None:
    root = points
    planned = cli("plan", cwd=root)
    assert planned.code == 0, planned.err
    assert "> runconfig/find" in planned.out
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.err + applied.out
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        (run_id, status, seconds, command) = store.query(
            "select id, status, epoch(ended_at) - epoch(started_at), command from runs "
            "where runconfig = 'runconfig/find' and parent_id is null"
        )[0]
        children = store.query(
            "select r.id, p.value, m.value from runs r "
            "join params p on p.run_id = r.id and p.key = 'algorithm' "
            "join metrics m on m.run_id = r.id and m.key = 'accuracy' "
            "where r.parent_id = ? order by r.created_at",
            [run_id],
        )
        best = dict(store.query("select key, value from metrics where run_id = ?", [run_id]))
        params = dict(store.query("select key, value from params where run_id = ?", [run_id]))
    assert status == "completed"
    # the whole job within its timeout_minutes, start to end
    assert seconds <= TIMEOUT_MINUTES * 60, seconds
    assert "python -m mlform.automl.driver" in command
    # every configuration FLAML evaluated is a child run with its algorithm and metrics,
    # and more than one algorithm was tried; none of the blocked ones
    assert len(children) == int(params["configurations"]) >= 3
    algorithms = {algorithm for _, algorithm, _ in children}
    assert len(algorithms) >= 2, algorithms
    assert not algorithms & {"KNN", "XGBoostClassifier", "LinearSVM"}
    # the job's own metrics are its best configuration's: the best of the children's
    assert best["accuracy"] == max(accuracy for _, _, accuracy in children) >= 0.9
    assert params["best_algorithm"] in algorithms
    # the best model, an MLflow model, registered through the gate
    model = json.loads(cli("models", "show", "points-best", "--json", cwd=root).out)
    assert model["version"] == "1" and model["run_id"] == run_id
    assert model["type"] == "mlflow_model"
    # … and served from the endpoint: the rule a + 2b > 1, learnt
    invoked = cli("endpoints", "invoke", "points", "--data", str(root / "request.json"), cwd=root)
    assert (invoked.code, invoked.out) == (0, '["yes","no","yes"]\n'), invoked.err
    # `runs show` ranks the configurations by the primary metric, the best first
    shown = cli("runs", "show", "find", cwd=root).out
    assert "  configurations, by accuracy (maximize):" in shown, shown
    table = shown.split("configurations, by accuracy (maximize):")[1].splitlines()
    assert table[1].split()[:1] == ["RANK"] and table[2].split()[0] == "best"
    assert table[2].split()[2] == f"{best['accuracy']:g}"
    # nothing changed: nothing runs again

    again = cli("plan", "--detailed-exitcode", cwd=root)
    assert again.code == 0, again.out
    # new data: the job runs again
    with (root / "data" / "points" / "points.csv").open("a") as csv:
        csv.write("0.5,0.5,0.0,red,yes\n")
    replanned = cli("plan", cwd=root)
    assert "> runconfig/find" in replanned.out and "training_data" in replanned.out, replanned.out
