"""An AutoML job's keys: Azure's algorithm names onto FLAML's learners, its metrics,
limits and validation, and what the driver is given."""

from __future__ import annotations

from typing import Any

import pytest

from mlform.automl import job
from mlform.sweeps import Invalid

BASE: dict[str, Any] = {
    "type": "automl",
    "task": "classification",
    "target_column_name": "y",
    "training_data": {"path": "./train", "type": "mltable"},
}


def parsed(**keys: Any) -> job.Automl:
    return job.parse({**BASE, **keys})


def test_defaults_are_azures() -> None:
    found = parsed()
    assert found.primary_metric == "accuracy" and found.maximize
    assert found.timeout == 360 * 60 and found.max_trials == 1000
    # every classification algorithm FLAML has a learner for
    assert set(found.learners) == {
        "lrl1", "lrl2", "sgd", "svc", "kneighbor", "rf", "extra_tree", "lgbm", "histgb", "xgboost"
    }  # fmt: skip
    regression = job.parse({**BASE, "task": "Regression"})
    assert regression.primary_metric == "normalized_root_mean_squared_error"
    assert not regression.maximize
    assert "enet" in regression.learners and "lrl1" not in regression.learners


def test_algorithms_are_allowed_and_blocked_by_azures_names_in_any_style() -> None:
    allowed = parsed(training={"allowed_training_algorithms": ["light_gbm", "LogisticRegression"]})
    assert allowed.learners == ("lgbm", "lrl1", "lrl2")
    blocked = parsed(training={"blocked_training_algorithms": ["XGBoostClassifier", "knn"]})
    assert "xgboost" not in blocked.learners and "kneighbor" not in blocked.learners
    # blocking one FLAML has no learner for changes nothing
    assert parsed(training={"blocked_training_algorithms": ["DecisionTree"]}).learners == (
        parsed().learners
    )
    both = parsed(
        training={
            "allowed_training_algorithms": ["LightGBM", "RandomForest"],
            "blocked_training_algorithms": ["RandomForest"],
        }
    )
    assert both.learners == ("lgbm",)


@pytest.mark.parametrize(
    ("keys", "where", "says"),
    [
        ({"task": "forecasting"}, ("task",), "task is classification or regression"),
        (
            {"training": {"allowed_training_algorithms": ["Prophet"]}},
            ("training", "allowed_training_algorithms", 0),
            "'Prophet' is not a classification algorithm",
        ),
        (
            {
                "training": {
                    "allowed_training_algorithms": ["SGD"],
                    "blocked_training_algorithms": ["SGD"],
                }
            },
            ("training",),
            "no algorithm is left to try",
        ),
        ({"primary_metric": "f1"}, ("primary_metric",), "is not one of a classification job's"),
        ({"limits": {"timeout_minutes": 0}}, ("limits", "timeout_minutes"), "above 0"),
        ({"limits": {"max_trials": 1.5}}, ("limits", "max_trials"), "whole number"),
        ({"n_cross_validations": 1}, ("n_cross_validations",), "2 or more"),
        ({"validation_data_size": 1.2}, ("validation_data_size",), "between 0 and 1"),
        ({"test_data": {"path": "./t"}}, ("test_data",), "not supported yet"),
        ({"featurization": {"mode": "custom"}}, ("featurization", "mode"), "not supported yet"),
    ],
)
def test_what_is_wrong_is_said_where(
    keys: dict[str, Any], where: tuple[Any, ...], says: str
) -> None:
    with pytest.raises(Invalid) as raised:
        parsed(**keys)
    assert raised.value.where == where and says in raised.value.message


def test_the_driver_is_given_the_limits_in_seconds_and_the_learners_azure_names() -> None:
    found = parsed(
        primary_metric="AUCWeighted",
        n_cross_validations=5,
        limits={
            "timeout_minutes": 2,
            "trial_timeout_minutes": 0.5,
            "max_trials": 40,
            "max_concurrent_trials": 2,
            "enable_early_termination": False,
        },
        training={"allowed_training_algorithms": ["GradientBoosting"]},
    )
    assert found.settings() == {
        "task": "classification",
        "primary_metric": "AUC_weighted",
        "target_column_name": "y",
        "timeout": 120.0,
        "max_trials": 40,
        "max_concurrent_trials": 2,
        "trial_timeout": 30.0,
        "early_termination": False,
        "learners": ["histgb"],
        "algorithms": {"histgb": "GradientBoosting"},
        "n_cross_validations": 5,
        "validation_data_size": None,
        "weight_column_name": None,
    }
