"""A sweep job's file as Azure ML writes it is read; what is wrong in one is said where it
is written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

# Azure ML's example sweep job (azureml-examples, cli/jobs/single-step/lightgbm/iris),
# with its environment and compute declared here.
AZURE = """
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  code: ../src
  command: >-
    python main.py
    --iris-csv ${{inputs.iris_csv}}
    --learning-rate ${{search_space.learning_rate}}
    --boosting ${{search_space.boosting}}
  environment: azureml:lightgbm-env@latest
inputs:
  iris_csv:
    type: uri_file
    path: ../data/iris.csv
compute: azureml:cpu-cluster
sampling_algorithm: random
search_space:
  learning_rate:
    type: uniform
    min_value: 0.01
    max_value: 0.9
  boosting:
    type: choice
    values: ["gbdt", "dart"]
objective:
  goal: minimize
  primary_metric: test-multi_logloss
limits:
  max_total_trials: 20
  max_concurrent_trials: 10
  timeout: 7200
early_termination:
  type: bandit
  evaluation_interval: 2
  slack_factor: 0.1
  delay_evaluation: 6
"""


def workspace(make: Make, sweep: str) -> Path:
    return make(
        {
            "workspace.yml": "name: sweeps\n",
            "src/main.py": "print('trained')\n",
            "data/iris.csv": "a,b\n1,2\n",
            "environments/lightgbm.yml": """
                name: lightgbm-env
                image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04
                """,
            "compute/cpu-cluster.yml": "name: cpu-cluster\ntype: local\n",
            "runconfigs/sweep.yml": sweep,
        }
    )


def test_azure_mls_sweep_job_file_is_read_and_planned(cli: Cli, make_workspace: Make) -> None:
    root = workspace(make_workspace, AZURE)
    checked = cli("validate", cwd=root)
    assert checked.code == 0, checked.err
    planned = cli("plan", cwd=root)
    assert "> runconfig/sweep" in planned.out and "no run yet" in planned.out, planned.out


def test_mistakes_in_a_sweep_are_said_where_they_are_written(
    cli: Cli, make_workspace: Make
) -> None:
    wrong = (
        AZURE.replace("sampling_algorithm: random", "sampling_algorithm: grid")
        .replace("--boosting ${{search_space.boosting}}", "--depth ${{search_space.depth}}")
        .replace("compute: azureml:cpu-cluster", "compute: azureml:cpu-cluster\ncommand: x")
    )
    root = workspace(make_workspace, wrong)
    checked = cli("validate", cwd=root)
    assert checked.code == 1
    assert checked.err.splitlines() == [
        "runconfigs/sweep.yml:16:1: error: a sweep job's command is its trial's: move it "
        "under trial:",
        "runconfigs/sweep.yml:20:11: error: learning_rate: grid sampling takes choice "
        "parameters only (each value once), not uniform; list its values, or sample at random",
        "validation failed: 2 errors",
    ]
    unknown = AZURE.replace(
        "--boosting ${{search_space.boosting}}", "--depth ${{search_space.depth}}"
    )
    root = workspace(make_workspace, unknown)
    checked = cli("validate", cwd=root)
    assert checked.err.splitlines()[0] == (
        "runconfigs/sweep.yml:5:12: error: command uses ${{search_space.depth}}, but the "
        "search space has no parameter 'depth' (boosting, learning_rate); declare it under "
        "search_space:"
    ), checked.err
    bandit = AZURE.replace("slack_factor: 0.1", "slack_factor: 0.1\n  slack_amount: 0.2")
    root = workspace(make_workspace, bandit)
    checked = cli("validate", cwd=root)
    assert checked.err.splitlines()[0].startswith(
        "runconfigs/sweep.yml:33:3: error: bandit takes one of slack_factor and slack_amount"
    ), checked.err
    without = AZURE.split("objective:")[0]
    root = workspace(make_workspace, without)
    checked = cli("validate", cwd=root)
    assert "missing required key 'objective'" in checked.err, checked.err
