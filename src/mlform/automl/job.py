"""An AutoML job as Azure ML's YAML declares it (`type: automl`), read and checked.

    task                  classification | regression
    primary_metric        Azure's names (accuracy, AUC_weighted, … ; r2_score,
                          normalized_root_mean_squared_error, …); default as Azure's
    target_column_name    the column to predict
    training_data         {path, type: mltable | uri_file | uri_folder}
    validation_data       as training_data; or n_cross_validations, or
                          validation_data_size; none: FLAML picks (as Azure does, by size)
    weight_column_name    each row's sample weight
    limits                timeout_minutes (default 360, as Azure's), max_trials (1000),
                          trial_timeout_minutes, enable_early_termination;
                          max_concurrent_trials is accepted, and configurations are
                          evaluated one at a time on every core (the README says why)
    training              allowed_training_algorithms, blocked_training_algorithms

Azure's algorithm names map onto FLAML's learners (`ALGORITHMS`); one FLAML has no
learner for is an error where it is allowed, and nothing where it is blocked. What the
job runs is `settings`: the same keys, resolved, for the driver.

Only the standard library here: the driver, run in the job's environment, imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlform.sweeps import Invalid, above_zero, whole

TASKS = ("classification", "regression")
# Azure's primary metrics of each task → whether more is better. Azure's default first.
METRICS: Mapping[str, Mapping[str, bool]] = {
    "classification": {
        "accuracy": True,
        "AUC_weighted": True,
        "average_precision_score_weighted": True,
        "norm_macro_recall": True,
        "precision_score_weighted": True,
    },
    "regression": {
        "normalized_root_mean_squared_error": False,
        "r2_score": True,
        "spearman_correlation": True,
        "normalized_mean_absolute_error": False,
    },
}
# Azure's algorithm names of each task → FLAML's learners. Those FLAML has none for are
# None: allowed, they are an error; blocked, nothing. GradientBoosting is scikit-learn's
# histogram-based gradient boosting, FLAML's `histgb`; LinearSVM is its LinearSVC.
ALGORITHMS: Mapping[str, Mapping[str, tuple[str, ...] | None]] = {
    "classification": {
        "LogisticRegression": ("lrl1", "lrl2"),
        "SGD": ("sgd",),
        "LinearSVM": ("svc",),
        "KNN": ("kneighbor",),
        "RandomForest": ("rf",),
        "ExtremeRandomTrees": ("extra_tree",),
        "LightGBM": ("lgbm",),
        "GradientBoosting": ("histgb",),
        "XGBoostClassifier": ("xgboost",),
        "SVM": None,
        "DecisionTree": None,
        "MultinomialNaiveBayes": None,
        "BernoulliNaiveBayes": None,
    },
    "regression": {
        "ElasticNet": ("enet",),
        "LassoLars": ("lassolars",),
        "SGD": ("sgd",),
        "KNN": ("kneighbor",),
        "RandomForest": ("rf",),
        "ExtremeRandomTrees": ("extra_tree",),
        "LightGBM": ("lgbm",),
        "GradientBoosting": ("histgb",),
        "XGBoostRegressor": ("xgboost",),
        "DecisionTree": None,
    },
}
# An AutoML job's run's tags: the metric its child runs are ranked by, and which way.
PRIMARY_TAG = "mlform.automl.primary_metric"
GOAL_TAG = "mlform.automl.goal"
# The Python package each learner needs beyond FLAML and scikit-learn.
LIBRARIES = {"lgbm": "lightgbm", "xgboost": "xgboost"}
_LIMITS = (
    "timeout_minutes",
    "max_trials",
    "max_concurrent_trials",
    "trial_timeout_minutes",
    "enable_early_termination",
    "max_cores_per_trial",
    "max_nodes",
)
_TIMEOUT_MINUTES = 360.0  # Azure's default: six hours
_MOST_TRIALS = 1000  # Azure's default max_trials
DATA = ("training_data", "validation_data")  # its data, given the job as inputs
# Azure's keys mlform's AutoML does not do: where each is written, and why.
_NOT_YET = {
    ("test_data",): "a held-out test run of the best model",
    ("test_data_size",): "a held-out test run of the best model",
    ("cv_split_column_names",): "cross-validation folds given as columns",
    ("positive_label",): "a chosen positive class for binary metrics",
    ("limits", "exit_score"): "stopping at a score (FLAML stops on the timeout, max_trials, "
    "or when its search converges: enable_early_termination)",
}


@dataclass(frozen=True, slots=True)
class Automl:
    task: str
    primary_metric: str
    target_column_name: str
    timeout: float  # seconds
    max_trials: int = _MOST_TRIALS
    max_concurrent_trials: int = 1
    trial_timeout: float | None = None  # seconds
    early_termination: bool = True
    learners: tuple[str, ...] = ()  # FLAML's names
    n_cross_validations: int | None = None
    validation_data_size: float | None = None
    weight_column_name: str | None = None

    @property
    def maximize(self) -> bool:
        return METRICS[self.task][self.primary_metric]

    def settings(self) -> dict[str, Any]:
        """What the driver is given (`mlform.automl.driver`)."""
        return {
            "task": self.task,
            "primary_metric": self.primary_metric,
            "target_column_name": self.target_column_name,
            "timeout": self.timeout,
            "max_trials": self.max_trials,
            "max_concurrent_trials": self.max_concurrent_trials,
            "trial_timeout": self.trial_timeout,
            "early_termination": self.early_termination,
            "learners": list(self.learners),
            "algorithms": {learner: algorithm(self.task, learner) for learner in self.learners},
            "n_cross_validations": self.n_cross_validations,
            "validation_data_size": self.validation_data_size,
            "weight_column_name": self.weight_column_name,
        }


def parse(body: Mapping[str, Any]) -> Automl:
    """An AutoML job's keys, as written; `Invalid` says what is wrong and where."""
    for where, what in _NOT_YET.items():
        holder = body.get(where[0]) if len(where) > 1 else body
        if isinstance(holder, Mapping) and where[-1] in holder:
            raise Invalid(where, f"{where[-1]} is not supported yet ({what}); remove it")
    featurization = body.get("featurization")
    if isinstance(featurization, Mapping) and str(
        featurization.get("mode", "auto")
    ).lower() not in (
        "auto",
        "off",
    ):
        raise Invalid(
            ["featurization", "mode"],
            "featurization mode custom is not supported yet: FLAML encodes categorical "
            "columns itself; write mode: auto",
        )
    task = str(body.get("task", "")).lower()
    if task not in TASKS:
        raise Invalid(
            ["task"],
            f"task is {' or '.join(TASKS)} (tabular AutoML), not {body.get('task')!r}",
        )
    for key in DATA:
        data = body.get(key)
        if data is not None and not (isinstance(data, Mapping) and data.get("path")):
            raise Invalid([key], f"{key} is a mapping with path: (and type: mltable)")
    if "training_data" not in body:
        raise Invalid([], "an AutoML job needs training_data: {path: …, type: mltable}")
    target = body.get("target_column_name")
    if not isinstance(target, str) or not target:
        raise Invalid(["target_column_name"], "target_column_name names the column to predict")
    limits = _limits(body.get("limits"))
    folds = body.get("n_cross_validations")
    if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
        raise Invalid(["n_cross_validations"], f"n_cross_validations is 2 or more, not {folds!r}")
    size = body.get("validation_data_size")
    if size is not None and (
        isinstance(size, bool) or not isinstance(size, int | float) or not 0 < size < 1
    ):
        raise Invalid(
            ["validation_data_size"], f"validation_data_size is between 0 and 1, not {size!r}"
        )
    given = [
        k for k in ("validation_data", "n_cross_validations", "validation_data_size") if k in body
    ]
    if len(given) > 1:
        raise Invalid(
            [given[1]], f"{given[0]} and {given[1]} both say how to validate: keep one of them"
        )
    weight = body.get("weight_column_name")
    return Automl(
        task=task,
        primary_metric=_metric(task, body.get("primary_metric")),
        target_column_name=target,
        learners=_learners(task, body.get("training")),
        n_cross_validations=folds,
        validation_data_size=float(size) if size is not None else None,
        weight_column_name=str(weight) if weight else None,
        **limits,
    )


def algorithm(task: str, learner: str) -> str:
    """The Azure name of FLAML's `learner`."""
    for name, learners in ALGORITHMS[task].items():
        if learners and learner in learners:
            return name
    return learner


def _metric(task: str, written: Any) -> str:
    known = METRICS[task]
    if written is None:
        return next(iter(known))
    found = _named(str(written), known)
    if found is None:
        raise Invalid(
            ["primary_metric"],
            f"primary_metric {written!r} is not one of a {task} job's: {', '.join(known)}",
        )
    return found


def _learners(task: str, training: Any) -> tuple[str, ...]:
    if training is None:
        training = {}
    if not isinstance(training, Mapping):
        raise Invalid(["training"], "training is a mapping (allowed_training_algorithms: […])")
    known = ALGORITHMS[task]
    chosen: dict[str, tuple[str, ...] | None] = {}
    for key in ("allowed_training_algorithms", "blocked_training_algorithms"):
        names = training.get(key)
        if names is None:
            continue
        if not isinstance(names, Sequence) or isinstance(names, str):
            raise Invalid(["training", key], f"{key} is a list of algorithm names")
        for at, written in enumerate(names):
            found = _named(str(written), known)
            if found is None:
                raise Invalid(
                    ["training", key, at],
                    f"{written!r} is not a {task} algorithm; Azure ML's are {', '.join(known)}",
                )
            if key == "allowed_training_algorithms":
                if known[found] is None:
                    raise Invalid(
                        ["training", key, at],
                        f"{found} is not available: FLAML, which runs mlform's AutoML, has no "
                        f"such learner; allow some of {_available(task)}",
                    )
                chosen[found] = known[found]
    allowed = training.get("allowed_training_algorithms")
    pool = chosen if allowed is not None else dict(known)
    blocked = {_named(str(n), known) for n in training.get("blocked_training_algorithms") or ()}
    learners = tuple(
        learner
        for name, found in pool.items()
        if found is not None and name not in blocked
        for learner in found
    )
    if not learners:
        raise Invalid(
            ["training"],
            f"no algorithm is left to try; allow some of {_available(task)} and block fewer",
        )
    return learners


def _available(task: str) -> str:
    return ", ".join(name for name, found in ALGORITHMS[task].items() if found is not None)


def _named(written: str, known: Mapping[str, Any]) -> str | None:
    """Azure's name for one written in another case or style (`auc_weighted`,
    `AUCWeighted`, `light_gbm`)."""
    folded = written.replace("_", "").lower()
    return next((name for name in known if name.replace("_", "").lower() == folded), None)


def _limits(body: Any) -> dict[str, Any]:
    where: list[str | int] = ["limits"]
    if body is None:
        return {"timeout": _TIMEOUT_MINUTES * 60}
    if not isinstance(body, Mapping):
        raise Invalid(where, f"limits takes {', '.join(_LIMITS)}")
    found: dict[str, Any] = {"timeout": _TIMEOUT_MINUTES * 60}
    for key in ("max_trials", "max_concurrent_trials"):
        count = whole(body, where, key)
        if count is not None:
            found[key] = count
    for key, field in (("timeout_minutes", "timeout"), ("trial_timeout_minutes", "trial_timeout")):
        minutes = above_zero(body, where, key, "minutes")
        if minutes is not None:
            found[field] = minutes * 60
    early = body.get("enable_early_termination")
    if early is not None:
        if not isinstance(early, bool):
            raise Invalid(
                [*where, "enable_early_termination"], "enable_early_termination is true or false"
            )
        found["early_termination"] = early
    return found
