"""How well a model does on production traffic whose ground truth has come in, as Azure
Machine Learning's model performance signal measures it ("Azure Machine Learning model
monitoring", learn.microsoft.com/azure/machine-learning/concept-model-monitoring;
computed by azureml-assets' `model_performance_metrics/`, which asks azureml-metrics for
accuracy, precision_score_macro, recall_score_macro, mean_absolute_error and
root_mean_squared_error):

- classification: `accuracy`, the share of pairs whose prediction is the ground truth;
  `precision` and `recall`, macro-averaged: each class's precision (its true positives
  over its predictions) and recall (its true positives over its ground truths), averaged
  with equal weight over every class that occurs as a prediction or a ground truth. A
  class never predicted has precision 0, one never true recall 0 (scikit-learn's
  `zero_division=0`). Azure averages so with two classes too, rather than scoring one
  positive class.
- regression: `mean_absolute_error`, `mean_squared_error` (which Azure's documentation
  lists too) and `root_mean_squared_error`.

A pair without a prediction or a ground truth (NULL, or NaN in regression) is left out.
Predictions and ground truths compare as text when their columns' types differ and are
not both numbers. DuckDB counts: one confusion matrix GROUP BY (at most classes² rows)
or one aggregate row.

Performance metrics have no default thresholds: an error's scale is the model's.
Accuracy, precision and recall breach below their threshold, errors above.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

import duckdb

from mlform.errors import MlformError
from mlform.monitoring.metrics import breached
from mlform.monitoring.names import check_metrics
from mlform.monitoring.relations import columns_of, is_numeric, one_row, quote

Task = Literal["classification", "regression"]

PERFORMANCE_METRICS: Mapping[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "precision", "recall"),
    "regression": ("mean_absolute_error", "mean_squared_error", "root_mean_squared_error"),
}


@dataclass(frozen=True, slots=True)
class PerformanceResult:
    """The model's metrics over `pairs` (prediction, ground truth) pairs; None, with a
    `note`, when there is no pair."""

    task: Task
    values: Mapping[str, float | None]
    pairs: int
    note: str | None = None

    def breaches(self, thresholds: Mapping[str, float]) -> tuple[str, ...]:
        """The metrics whose value breaches its threshold (metrics without one never do)."""
        return tuple(
            metric
            for metric, value in self.values.items()
            if value is not None
            and metric in thresholds
            and breached(metric, value, thresholds[metric])
        )


def model_performance(
    con: duckdb.DuckDBPyConnection,
    pairs: str,
    task: Task,
    metrics: Collection[str] | None = None,
    *,
    prediction: str = "prediction",
    ground_truth: str = "ground_truth",
) -> PerformanceResult:
    """The model's performance over `pairs` (SQL that can follow FROM), whose columns
    `prediction` and `ground_truth` hold what the model answered and what was true;
    `metrics` picks among PERFORMANCE_METRICS[task], all of them by default."""
    known = PERFORMANCE_METRICS[task]
    check_metrics(metrics, known, task)
    kinds = columns_of(con, pairs, "performance")
    missing = [c for c in (prediction, ground_truth) if c not in kinds]
    if missing:
        raise MlformError(
            f"no column {', '.join(f'`{c}`' for c in missing)} in the pairs `{pairs}`; "
            f"its columns are {', '.join(kinds) or 'none'}"
        )
    wanted = known if metrics is None else tuple(m for m in known if m in metrics)
    if task == "classification":
        kind, truth_kind = kinds[prediction], kinds[ground_truth]
        as_text = kind != truth_kind and not (is_numeric(kind) and is_numeric(truth_kind))
        count, values = _classification(con, pairs, quote(prediction), quote(ground_truth), as_text)
    else:
        count, values = _regression(con, pairs, quote(prediction), quote(ground_truth))
    if count == 0:
        return PerformanceResult(
            task, dict.fromkeys(wanted), 0, "no pair of a prediction and a ground truth"
        )
    return PerformanceResult(task, {m: values[m] for m in wanted}, count)


def _classification(
    con: duckdb.DuckDBPyConnection, pairs: str, prediction: str, truth: str, as_text: bool
) -> tuple[int, dict[str, float]]:
    if as_text:
        prediction, truth = f"CAST({prediction} AS VARCHAR)", f"CAST({truth} AS VARCHAR)"
    cells = con.execute(
        f"""SELECT p, t, count(*) FROM (SELECT {prediction} AS p, {truth} AS t FROM {pairs})
            WHERE p IS NOT NULL AND t IS NOT NULL GROUP BY p, t"""
    ).fetchall()
    predicted: Counter[object] = Counter()
    actual: Counter[object] = Counter()
    hits: Counter[object] = Counter()
    for p, t, n in cells:
        predicted[p] += n
        actual[t] += n
        if p == t:
            hits[p] += n
    count = sum(predicted.values())
    classes = predicted.keys() | actual.keys()
    if not classes:
        return 0, {}
    precision = sum(hits[c] / predicted[c] for c in classes if predicted[c]) / len(classes)
    recall = sum(hits[c] / actual[c] for c in classes if actual[c]) / len(classes)
    return count, {"accuracy": hits.total() / count, "precision": precision, "recall": recall}


def _regression(
    con: duckdb.DuckDBPyConnection, pairs: str, prediction: str, truth: str
) -> tuple[int, dict[str, float]]:
    count, absolute, squared = one_row(
        con,
        f"""SELECT count(*), avg(abs(e)), avg(e * e) FROM (
                SELECT TRY_CAST({prediction} AS DOUBLE) - TRY_CAST({truth} AS DOUBLE) AS e
                FROM {pairs}) WHERE NOT isnan(e)""",
    )
    if not count:
        return 0, {}
    return int(count), {
        "mean_absolute_error": float(absolute),
        "mean_squared_error": float(squared),
        "root_mean_squared_error": math.sqrt(squared),
    }
