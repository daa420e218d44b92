"""A monitor as `monitors/*.yml` declares it: Azure ML's monitor schedule YAML
(`trigger:` and `create_monitor:`), read into the signals mlform computes.

The production data of every signal is what the deployment captured (its
`data_collector`), over a window: `production_data.data_window.lookback_window_size`
back from the run (offset by `lookback_window_offset`), by default the time since the
monitor's previous run, as Azure's "last monitoring period". The reference data is the
data asset `reference_data.input_data.path` names, or by default the data the deployed
model version was trained on, found through its lineage (Azure asks for it; mlform knows
it). A monitor without signals gets Azure's basic three: data drift, prediction drift and
data quality.

`features: {top_n_feature_importance: N}` monitors the N features the deployed model
version says matter most: the model exposes its importances as `feature_importance.json`
among its files (`{"feature": importance, …}`, ranked by absolute value), which its
training script writes beside the model.

A `model_performance` signal compares the deployment's predictions with ground truth that
came in later: the data asset `reference_data.input_data.path` (Azure's `data_context:
actuals`), whose `data_column_names.actual` column holds what was true and whose
`correlation_id` column names the request (its `x-request-id`; row i of a request of
several rows is `<x-request-id>/<i>`). Its thresholds are under
`metric_thresholds.tabular_classification` or `tabular_regression`, as Azure writes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal

from mlform.config.refs import AssetRef, parse_asset_ref
from mlform.config.specs import Source, Spec, common
from mlform.errors import Problem

# A monitor without signals gets each of these, named by its type.
BASIC_SIGNALS = ("data_drift", "prediction_drift", "data_quality")
# What mlform computes.
SIGNALS = (*BASIC_SIGNALS, "model_performance")
# What `on_breach.with:` can hand the job it runs, of the monitor's run that breached
MONITOR_VALUES = {
    "production_data": "the window's captured rows that breached, as a CSV file",
    "window_start": "the window's start, ISO 8601 in UTC",
    "window_end": "the window's end, ISO 8601 in UTC",
    "run_id": "the monitor run's id",
}
DATA = "production_data"
MONITOR_VALUE = re.compile(r"^\$\{\{\s*monitor\.([A-Za-z0-9_.-]+)\s*\}\}$")
# metric_thresholds' key of a model performance signal's task, as Azure names it
Task = Literal["classification", "regression"]
PERFORMANCE_TASKS: Mapping[str, Task] = {
    "tabular_classification": "classification",
    "tabular_regression": "regression",
}
_KINDS = ("numerical", "categorical", *PERFORMANCE_TASKS)
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_DEPLOYMENT = re.compile(r"^(?:azureml:)?(?P<endpoint>[^:/]+):(?P<deployment>[^:/]+)$")


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    type: str  # data_drift | prediction_drift | data_quality | model_performance
    reference: AssetRef | None  # None: the training data, through lineage
    target_column: str | None  # model_performance: the ground truth's column of actuals
    features: tuple[str, ...] | None  # None: all features (or the top_n)
    # numerical|categorical|tabular_classification|tabular_regression → metric → value
    thresholds: Mapping[str, Mapping[str, float]]
    window: timedelta | None  # None: since the previous run
    offset: timedelta
    alert: bool
    where: tuple[str, ...]  # its path in the file
    correlation_column: str = "correlation_id"  # model_performance: the ground truth's
    top_n: int | None = None  # features.top_n_feature_importance: the model's most important

    def task(self, ml_task: str | None) -> Task | None:
        """A model performance signal's task: its thresholds' (tabular_classification or
        tabular_regression), else the monitor's `ml_task`."""
        named = [PERFORMANCE_TASKS[k] for k in PERFORMANCE_TASKS if self.thresholds.get(k)]
        if len(named) == 1:
            return named[0]
        tasks: dict[str | None, Task] = {task: task for task in PERFORMANCE_TASKS.values()}
        return tasks.get(ml_task) if not named else None


@dataclass(frozen=True, slots=True)
class MonitorSpec(Spec):
    """Signals of one deployment, computed when the trigger says."""

    kind: ClassVar[str] = "monitor"
    endpoint: str = ""
    deployment: str = ""
    ml_task: str | None = None
    signals: tuple[Signal, ...] = ()
    emails: tuple[str, ...] = ()
    webhooks: tuple[Mapping[str, str], ...] = field(default=())
    on_breach: str | None = None  # as written: the job a breach runs (a path or a name)
    on_breach_job: str | None = None  # its address, once resolved
    # on_breach.with: the job's inputs for that run, as written (`${{monitor.…}}` or a value)
    on_breach_with: Mapping[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"{self.endpoint}:{self.deployment}"

    def problems(self) -> list[Problem]:
        problems: list[Problem] = []
        where = ["create_monitor", "monitoring_target", "endpoint_deployment_id"]
        if not self.endpoint:
            written = self.body["create_monitor"]["monitoring_target"]["endpoint_deployment_id"]
            problems.append(
                self.source.problem(
                    where,
                    f"'{written}' is not an endpoint and deployment; write "
                    "azureml:ENDPOINT:DEPLOYMENT",
                )
            )
        signals = self.body["create_monitor"].get("monitoring_signals") or {}
        for name, body in signals.items():
            at = ["create_monitor", "monitoring_signals", name]
            if body["type"] not in SIGNALS:
                problems.append(
                    self.source.problem(
                        [*at, "type"],
                        f"{body['type']} signals are not supported yet; mlform computes "
                        f"{', '.join(SIGNALS)}",
                    )
                )
            for side in ("production_data", "reference_data"):
                data = body.get(side) or {}
                if "pre_processing_component" in data:
                    problems.append(
                        self.source.problem(
                            [*at, side, "pre_processing_component"],
                            "a pre-processing component is not supported yet; mlform reads "
                            "the deployment's own captured requests",
                            key=True,
                        )
                    )
            if "input_data" in (body.get("production_data") or {}):
                problems.append(
                    self.source.problem(
                        [*at, "production_data", "input_data"],
                        "production data other than the deployment's captured requests is "
                        "not supported yet; leave input_data out",
                        key=True,
                    )
                )
            reference = ((body.get("reference_data") or {}).get("input_data") or {}).get("path")
            if reference is not None and parse_asset_ref(str(reference)) is None:
                problems.append(
                    self.source.problem(
                        [*at, "reference_data", "input_data", "path"],
                        f"'{reference}' is not a data asset reference; write "
                        "azureml:NAME:VERSION or NAME@latest",
                    )
                )
            if body["type"] == "model_performance":
                problems.extend(self._performance_problems(at, body))
            else:
                problems.extend(
                    self.source.problem(
                        [*at, "metric_thresholds", kind],
                        f"{kind} thresholds are for a model_performance signal; a "
                        f"{body['type']} signal's go under numerical and categorical",
                        key=True,
                    )
                    for kind in PERFORMANCE_TASKS
                    if (body.get("metric_thresholds") or {}).get(kind)
                )
        return problems

    def _performance_problems(self, at: list[str], body: Mapping[str, Any]) -> list[Problem]:
        """A model performance signal needs its ground truth, the column of actuals in it,
        and one task."""
        problems: list[Problem] = []
        reference = body.get("reference_data") or {}
        if not (reference.get("input_data") or {}).get("path"):
            problems.append(
                self.source.problem(
                    at,
                    "a model_performance signal needs its ground truth: name the data asset "
                    "under reference_data.input_data.path (azureml:NAME:VERSION), with "
                    "data_context: actuals",
                )
            )
        columns = reference.get("data_column_names") or {}
        if not (reference.get("target_column_name") or columns.get("target_column")) and not (
            columns.get("actual")
        ):
            problems.append(
                self.source.problem(
                    at,
                    "a model_performance signal needs the ground truth's column of actual "
                    "values: write reference_data.data_column_names.actual",
                )
            )
        thresholds = body.get("metric_thresholds") or {}
        named = [k for k in PERFORMANCE_TASKS if thresholds.get(k)]
        task = self.ml_task
        if len(named) > 1 or (not named and task not in PERFORMANCE_TASKS.values()):
            problems.append(
                self.source.problem(
                    [*at, "metric_thresholds"] if named else at,
                    "a model_performance signal measures one task: give its thresholds under "
                    "metric_thresholds.tabular_classification or tabular_regression, or set "
                    "monitoring_target.ml_task to classification or regression",
                )
            )
        elif named and task is not None and PERFORMANCE_TASKS[named[0]] != task:
            problems.append(
                self.source.problem(
                    [*at, "metric_thresholds", named[0]],
                    f"{named[0]} thresholds on a monitor whose ml_task is {task}; write "
                    f"the thresholds of {task}",
                    key=True,
                )
            )
        for kind in ("numerical", "categorical"):
            if thresholds.get(kind):
                problems.append(
                    self.source.problem(
                        [*at, "metric_thresholds", kind],
                        f"a model_performance signal has no {kind} features; its thresholds "
                        "go under tabular_classification or tabular_regression",
                        key=True,
                    )
                )
        return problems


def parse(body: Mapping[str, Any], source: Source) -> MonitorSpec:
    create = body["create_monitor"]
    target = create["monitoring_target"]
    found = _DEPLOYMENT.match(str(target["endpoint_deployment_id"]))
    signals = create.get("monitoring_signals") or {}
    if not signals:
        parsed = tuple(_signal(kind, {"type": kind}, ("create_monitor",)) for kind in BASIC_SIGNALS)
    else:
        parsed = tuple(
            _signal(name, signal, ("create_monitor", "monitoring_signals", name))
            for name, signal in signals.items()
        )
    alerts = create.get("alert_notification") or {}
    return MonitorSpec(
        **common(body),
        source=source,
        endpoint=found["endpoint"] if found else "",
        deployment=found["deployment"] if found else "",
        ml_task=target.get("ml_task"),
        signals=parsed,
        emails=tuple(str(e) for e in alerts.get("emails") or ()),
        webhooks=tuple(dict(w) for w in alerts.get("webhooks") or ()),
        on_breach=(create.get("on_breach") or {}).get("invoke"),
        on_breach_with={
            str(k): _text(v) for k, v in ((create.get("on_breach") or {}).get("with") or {}).items()
        },
    )


def _text(value: Any) -> str:
    """A literal input as a job's file writes it: YAML's true and false as Azure's."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _signal(name: str, body: Mapping[str, Any], where: tuple[str, ...]) -> Signal:
    reference = body.get("reference_data") or {}
    production = body.get("production_data") or {}
    window = production.get("data_window") or {}
    path = (reference.get("input_data") or {}).get("path")
    columns = reference.get("data_column_names") or {}
    features = body.get("features")
    thresholds = body.get("metric_thresholds") or {}
    return Signal(
        name=name,
        type=str(body["type"]),
        reference=parse_asset_ref(str(path)) if path is not None else None,
        target_column=reference.get("target_column_name")
        or columns.get("target_column")
        or columns.get("actual"),
        features=tuple(features) if isinstance(features, list) else None,
        top_n=int(features["top_n_feature_importance"]) if isinstance(features, dict) else None,
        thresholds={
            kind: {str(k): float(v) for k, v in (thresholds.get(kind) or {}).items()}
            for kind in _KINDS
        },
        window=duration(window["lookback_window_size"])
        if "lookback_window_size" in window
        else None,
        offset=duration(window.get("lookback_window_offset", "P0D")),
        alert=bool(body.get("alert_enabled", True)),
        where=where,
        correlation_column=str(
            columns.get("correlation_id")
            or columns.get("correlation_id_column")
            or "correlation_id"
        ),
    )


def duration(text: str) -> timedelta:
    """An ISO 8601 duration of days and time (`P7D`, `PT12H`), as the schema admits."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P7D or PT12H")
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
