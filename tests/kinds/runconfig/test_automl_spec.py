"""Azure ML's AutoML job file, as its documentation writes it, read and planned; its
mistakes said where they are written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

# Azure ML's bank marketing classification job (azureml-examples, cli/jobs/automl-standalone-
# jobs), without the test data and exit score mlform does not do yet.
AZURE = """\
$schema: https://azuremlsdk2.blob.core.windows.net/preview/0.0.1/autoMLJob.schema.json
type: automl

experiment_name: dpv2-cli-automl-classifier-experiment
description: A Classification job using bank marketing

compute: azureml:cpu-cluster

task: classification
log_verbosity: debug
primary_metric: accuracy

target_column_name: "y"

training_data:
  path: "./training-mltable-folder"
  type: mltable
validation_data:
  path: "./validation-mltable-folder"
  type: mltable

limits:
  timeout_minutes: 180
  max_trials: 40
  max_concurrent_trials: 5
  trial_timeout_minutes: 20
  enable_early_termination: true

featurization:
  mode: auto

training:
  enable_stack_ensemble: false
  enable_vote_ensemble: false
  allowed_training_algorithms: ["LogisticRegression", "LightGBM"]
"""

MLTABLE = (
    "paths:\n  - file: ./data.csv\ntransformations:\n  - read_delimited:\n      delimiter: ','\n"
)


def workspace(make_workspace: Make, job: str) -> Path:
    return make_workspace(
        {
            "workspace.yml": "name: bank\n",
            "compute/cpu-cluster.yml": "name: cpu-cluster\ntype: local\n",
            "runconfigs/training-mltable-folder/MLTable": MLTABLE,
            "runconfigs/training-mltable-folder/data.csv": "age,y\n30,no\n",
            "runconfigs/validation-mltable-folder/MLTable": MLTABLE,
            "runconfigs/validation-mltable-folder/data.csv": "age,y\n40,yes\n",
            "runconfigs/automl.yml": job,
        }
    )


def test_azure_mls_automl_job_file_is_read_and_planned(cli: Cli, make_workspace: Make) -> None:
    root = workspace(make_workspace, AZURE)
    checked = cli("validate", cwd=root)
    assert checked.code == 0, checked.err
    planned = cli("plan", cwd=root)
    assert "> runconfig/automl" in planned.out and "no run yet" in planned.out, planned.out


def test_mistakes_in_an_automl_job_are_said_where_they_are_written(
    cli: Cli, make_workspace: Make
) -> None:
    cases = {
        '["LogisticRegression", "LightGBM"]': (
            '["LogisticRegression", "DecisionTree"]',
            "runconfigs/automl.yml:35:55: error: DecisionTree is not available: FLAML, which "
            "runs mlform's AutoML, has no such learner; allow some of LogisticRegression, SGD, "
            "LinearSVM, KNN, RandomForest, ExtremeRandomTrees, LightGBM, GradientBoosting, "
            "XGBoostClassifier",
        ),
        "primary_metric: accuracy": (
            "primary_metric: r2_score",
            "runconfigs/automl.yml:11:17: error: primary_metric 'r2_score' is not one of a "
            "classification job's: accuracy, AUC_weighted, average_precision_score_weighted, "
            "norm_macro_recall, precision_score_weighted",
        ),
        "  enable_early_termination: true": (
            "  enable_early_termination: true\n  exit_score: 0.92",
            "runconfigs/automl.yml:28:15: error: exit_score is not supported yet (stopping at "
            "a score (FLAML stops on the timeout, max_trials, or when its search converges: "
            "enable_early_termination)); remove it",
        ),
        "validation_data:\n": (
            "n_cross_validations: 5\nvalidation_data:\n",
            "runconfigs/automl.yml:18:22: error: validation_data and n_cross_validations both "
            "say how to validate: keep one of them",
        ),
    }
    for old, (new, said) in cases.items():
        assert old in AZURE
        root = workspace(make_workspace, AZURE.replace(old, new))
        checked = cli("validate", cwd=root)
        assert (checked.code, checked.err.splitlines()[0]) == (1, said), checked.err
    root = workspace(make_workspace, AZURE.replace('target_column_name: "y"\n', ""))
    checked = cli("validate", cwd=root)
    assert "missing required key 'target_column_name'" in checked.err, checked.err
