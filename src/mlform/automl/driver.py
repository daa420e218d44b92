"""What an AutoML job runs, in its environment on its compute:

    python -m mlform.automl.driver --settings JSON --training-data PATH
        [--validation-data PATH] --best-model FOLDER

It reads the data (an MLTable folder, a CSV, Parquet or JSON-lines file, or a folder of
them), runs FLAML's search over the job's learners within its limits, and records, as
the search goes, each configuration FLAML evaluated as a child run of the job: its
algorithm and parameters, and Azure's metrics of its task on the validation data. At the
end the job's own run gets the best configuration's metrics (what `register_model`'s
`when` reads), and the best model is saved into `best_model` as an MLflow model, so it
registers and serves like any other.

The job's `timeout_minutes` is the whole run's: FLAML's time budget is what is left of it
once the data is read, less what saving the model takes.

It needs FLAML, scikit-learn, pandas and MLflow in the job's environment (`mlform[automl]`
for a job without one). A user error (no such column, data it cannot read) ends it with a
message that says what to do, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlform.automl.job import GOAL_TAG, LIBRARIES, METRICS, PRIMARY_TAG
from mlform.tracking.sdk import Run, get_run

_NEEDED = ("flaml", "sklearn", "pandas", "mlflow")
_SAVING = 8.0  # seconds kept back from FLAML's budget to save the best model
_SAVING_SHARE = 0.1  # … or this share of the timeout, when more (at most a minute)
_EVERY = 0.25  # seconds between looks at FLAML's log for newly evaluated configurations
_READERS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".jsonl": "json", ".json": "json"}


class UserError(Exception):
    """What the job's author has to fix; said as it is, without a traceback."""


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(prog="python -m mlform.automl.driver")
    parser.add_argument("--settings", required=True)
    parser.add_argument("--training-data", required=True, type=Path)
    parser.add_argument("--validation-data", type=Path)
    parser.add_argument("--best-model", required=True, type=Path)
    args = parser.parse_args(argv)
    settings = json.loads(args.settings)
    try:
        return _automl(args, settings, started)
    except UserError as err:
        print(f"automl: {err}", file=sys.stderr, flush=True)
        return 2


def _automl(args: argparse.Namespace, settings: Mapping[str, Any], started: float) -> int:
    missing = [name for name in _NEEDED if not _importable(name)]
    if missing:
        raise UserError(
            f"{', '.join(missing)} not installed in the Python this job runs in "
            f"({sys.executable}): add flaml, scikit-learn, pandas and mlflow to the job's "
            "environment, or, for a job without one, pip install 'mlform[automl]'"
        )
    # start-up: the heavy libraries only once the job is known to have them
    from flaml.automl import AutoML

    task, target = str(settings["task"]), str(settings["target_column_name"])
    train = _table(args.training_data, "training_data")
    x_train, y_train = _split(train, target, "training_data")
    fit: dict[str, Any] = {}
    if args.validation_data is not None:
        valid = _table(args.validation_data, "validation_data")
        fit["X_val"], fit["y_val"] = _split(valid, target, "validation_data")
        fit["eval_method"] = "holdout"
    elif settings.get("n_cross_validations"):
        fit["eval_method"], fit["n_splits"] = "cv", int(settings["n_cross_validations"])
    elif settings.get("validation_data_size"):
        fit["eval_method"], fit["split_ratio"] = "holdout", float(settings["validation_data_size"])
    weight = settings.get("weight_column_name")
    if weight:
        if weight not in x_train.columns:
            raise UserError(f"training_data has no weight column {weight!r}")
        fit["sample_weight"] = x_train.pop(weight).to_numpy()
        if "X_val" in fit and weight in fit["X_val"].columns:
            fit["sample_weight_val"] = fit["X_val"].pop(weight).to_numpy()
    learners = _learners(settings)
    timeout = float(settings["timeout"])
    saving = max(_SAVING, min(60.0, _SAVING_SHARE * timeout))
    budget = timeout - (time.monotonic() - started) - saving
    if budget <= 1:
        raise UserError(
            f"limits.timeout_minutes ({timeout / 60:g}) leaves no time to search once the "
            "data is read: raise it"
        )
    if settings.get("trial_timeout"):
        fit["train_time_limit"] = float(settings["trial_timeout"])
    concurrent = int(settings.get("max_concurrent_trials") or 1)
    if concurrent > 1:
        # FLAML evaluates side by side only on Ray Tune, which costs more than it gives on
        # one machine (see the README's AutoML section): one at a time, on every core
        print(
            f"automl: max_concurrent_trials {concurrent}: configurations are evaluated one "
            "at a time, each training on every core",
            flush=True,
        )
    primary = str(settings["primary_metric"])
    maximize = METRICS[task][primary]
    run = get_run()
    # what `mlform runs show` ranks the job's child runs by
    run.set_tags({PRIMARY_TAG: primary, GOAL_TAG: "maximize" if maximize else "minimize"})
    log = run.dir / "flaml.log"
    trials = _Trials(log, run, settings, primary)
    trials.start()
    automl = AutoML()  # type: ignore[no-untyped-call]
    print(
        f"automl: {task} of {target!r} over {len(x_train)} rows, by {primary}; learners "
        f"{', '.join(learners)}; {budget:.0f} s to search, at most "
        f"{settings['max_trials']} configurations",
        flush=True,
    )
    try:
        automl.fit(
            X_train=x_train,
            y_train=y_train,
            task=task,
            metric=_metric(task, primary, maximize),
            estimator_list=learners,
            time_budget=budget,
            max_iter=int(settings["max_trials"]),
            n_concurrent_trials=1,
            n_jobs=-1,
            early_stop=bool(settings.get("early_termination", True)),
            retrain_full="budget",
            log_file_name=str(log),
            log_type="all",  # every configuration, not only those that improve
            mlflow_logging=False,
            verbose=2,  # FLAML's start, budget estimate and end; each child run says the rest
            **fit,
        )
    finally:
        trials.finish()
    if automl.best_estimator is None or automl.model is None:
        raise UserError(
            f"no configuration finished within the job's limits ({budget:.0f} s of search): "
            "raise limits.timeout_minutes or allow faster algorithms"
        )
    best = trials.best(automl.best_loss)
    scores = {k: v for k, v in (best or {}).items() if isinstance(v, int | float)}
    for key, value in scores.items():
        run.log(key, value)
    chosen = settings["algorithms"].get(automl.best_estimator, automl.best_estimator)
    run.log_params(
        {
            "best_algorithm": chosen,
            "best_learner": automl.best_estimator,
            "best_config": json.dumps(automl.best_config, sort_keys=True, default=str),
            "configurations": trials.count,
        }
    )
    run.flush()
    _save(_lean(automl), x_train, args.best_model, learners)
    print(
        f"automl: best {chosen} ({automl.best_estimator}) of {trials.count} configurations, "
        f"{primary} {scores.get(primary, math.nan):.6g}; saved to {args.best_model}",
        flush=True,
    )
    return 0


# -- the data ----------------------------------------------------------------------------


def _table(path: Path, key: str) -> Any:
    """One table from an MLTable folder, a file, or a folder of files of one format."""
    import pandas as pd  # type: ignore[import-untyped]

    if not path.exists():
        raise UserError(f"{key}: {path} does not exist")
    if path.is_dir() and (path / "MLTable").is_file():
        files, reader, options = _mltable(path, key)
    elif path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in _READERS)
        if not found:
            raise UserError(f"{key}: {path} has no CSV, Parquet or JSON-lines files")
        reader = _READERS[found[0].suffix.lower()]
        files, options = [p for p in found if _READERS[p.suffix.lower()] == reader], {}
    else:
        reader = _READERS.get(path.suffix.lower(), "csv")
        files, options = [path], {}
    try:
        frames = [_read(pd, reader, file, options) for file in files]
    except (OSError, ValueError) as err:
        raise UserError(f"{key}: cannot read {files[0]} as {reader}: {err}") from None
    if not frames:
        raise UserError(f"{key}: {path} names no files")
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _read(pd: Any, reader: str, file: Path, options: Mapping[str, Any]) -> Any:
    if reader == "parquet":
        return pd.read_parquet(file)
    if reader == "json":
        return pd.read_json(file, lines=True)
    return pd.read_csv(
        file,
        sep=options.get("delimiter", "\t" if file.suffix.lower() == ".tsv" else ","),
        encoding=options.get("encoding", "utf-8"),
        header=None if options.get("header") == "no_header" else "infer",
    )


def _mltable(folder: Path, key: str) -> tuple[list[Path], str, dict[str, Any]]:
    """The files, reader and reader options an MLTable file declares (`paths:` of `file`,
    `folder` or `pattern`; `transformations:` `read_delimited`, `read_parquet` or
    `read_json_lines`), as Azure ML's mltable package reads them."""
    try:
        import yaml
    except ImportError:
        raise UserError(
            f"{key}: reading an MLTable file needs PyYAML in the job's environment"
        ) from None
    spec = yaml.safe_load((folder / "MLTable").read_text(encoding="utf-8")) or {}
    files: list[Path] = []
    for entry in spec.get("paths") or ():
        kind, value = next(iter(entry.items())) if isinstance(entry, dict) else ("", "")
        where = str(value).removeprefix("file://")
        if kind == "file":
            files.append(_inside(folder, where, key))
        elif kind == "folder":
            files.extend(sorted(p for p in _inside(folder, where, key).rglob("*") if p.is_file()))
        elif kind == "pattern":
            files.extend(sorted(p for p in folder.glob(where.removeprefix("./")) if p.is_file()))
        else:
            raise UserError(f"{key}: MLTable paths entry {entry!r} is not file, folder or pattern")
    reader, options = "csv", {}
    names = {"read_delimited": "csv", "read_parquet": "parquet", "read_json_lines": "json"}
    for step in spec.get("transformations") or ():
        name = next(iter(step)) if isinstance(step, dict) else str(step)
        if name in names:
            reader = names[name]
            options = dict(step[name] or {}) if isinstance(step, dict) else {}
    return files, reader, options


def _inside(folder: Path, written: str, key: str) -> Path:
    if "://" in written:
        raise UserError(
            f"{key}: MLTable path {written} is a URL: declare the data as a data asset or a "
            "datastore path, which mlform gives the job as files"
        )
    path = (folder / written).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise UserError(f"{key}: MLTable path {written} is outside its folder {folder}")
    return path


def _split(table: Any, target: str, key: str) -> tuple[Any, Any]:
    if target not in table.columns:
        columns = ", ".join(map(str, table.columns[:20]))
        raise UserError(
            f"{key} has no column {target!r} (target_column_name); its columns: {columns}"
        )
    y = table[target]
    if y.isna().any():
        raise UserError(f"{key}: {int(y.isna().sum())} rows have no {target}: drop or fill them")
    return table.drop(columns=[target]), y


# -- the search ----------------------------------------------------------------------------


def _learners(settings: Mapping[str, Any]) -> list[str]:
    """The job's learners whose library this environment has; those it lacks are said,
    and left out (an error when none is left)."""
    learners = [str(name) for name in settings["learners"]]
    lacking = {
        learner: LIBRARIES[learner]
        for learner in learners
        if learner in LIBRARIES and not _importable(LIBRARIES[learner])
    }
    kept = [learner for learner in learners if learner not in lacking]
    for learner, library in lacking.items():
        algorithm = settings["algorithms"].get(learner, learner)
        print(f"automl: {algorithm} left out: {library} is not installed", flush=True)
    if not kept:
        needed = ", ".join(sorted(set(lacking.values())))
        raise UserError(f"every allowed algorithm needs what is not installed: add {needed}")
    return kept


def _metric(
    task: str, primary: str, maximize: bool
) -> Callable[..., tuple[float, dict[str, float]]]:
    """FLAML's custom metric: the loss it minimises (the primary metric, negated when more
    is better), and Azure's metrics of the task, which each child run records."""

    def metric(
        x_val: Any,
        y_val: Any,
        estimator: Any,
        labels: Any,
        x_train: Any,
        y_train: Any,
        weight_val: Any = None,
        *_: Any,
    ) -> tuple[float, dict[str, float]]:
        if task == "classification":
            scores = _classification(estimator, x_val, y_val, labels, weight_val)
        else:
            scores = _regression(estimator, x_val, y_val, y_train, weight_val)
        value = scores[primary]
        if math.isnan(value):
            return math.inf, scores
        return (-value if maximize else value), scores

    return metric


def _classification(estimator: Any, x: Any, y: Any, labels: Any, weight: Any) -> dict[str, float]:
    """Azure ML's classification metrics (its documented definitions, from scikit-learn)."""
    import numpy as np
    from sklearn import metrics  # type: ignore[import-untyped]

    predicted = estimator.predict(x)
    classes = list(labels) if labels is not None else sorted(set(y))
    recall = metrics.recall_score(
        y, predicted, average="macro", labels=classes, sample_weight=weight, zero_division=0
    )
    chance = 1 / max(len(classes), 2)
    scores = {
        "accuracy": float(metrics.accuracy_score(y, predicted, sample_weight=weight)),
        "precision_score_weighted": float(
            metrics.precision_score(
                y, predicted, average="weighted", sample_weight=weight, zero_division=0
            )
        ),
        "norm_macro_recall": float(max(0.0, (recall - chance) / (1 - chance))),
        "AUC_weighted": math.nan,
        "average_precision_score_weighted": math.nan,
    }
    try:
        proba = estimator.predict_proba(x)
    except (AttributeError, NotImplementedError):
        return scores  # a learner without probabilities (LinearSVC) has no AUC
    try:
        if len(classes) == 2:
            positive = np.asarray(y) == classes[1]
            scores["AUC_weighted"] = float(
                metrics.roc_auc_score(positive, proba[:, 1], sample_weight=weight)
            )
            scores["average_precision_score_weighted"] = float(
                metrics.average_precision_score(positive, proba[:, 1], sample_weight=weight)
            )
        else:
            from sklearn.preprocessing import label_binarize  # type: ignore[import-untyped]

            onehot = label_binarize(y, classes=classes)
            scores["AUC_weighted"] = float(
                metrics.roc_auc_score(onehot, proba, average="weighted", sample_weight=weight)
            )
            scores["average_precision_score_weighted"] = float(
                metrics.average_precision_score(
                    onehot, proba, average="weighted", sample_weight=weight
                )
            )
    except ValueError:
        pass  # a class missing from this validation fold: no AUC there
    return scores


def _regression(estimator: Any, x: Any, y: Any, y_train: Any, weight: Any) -> dict[str, float]:
    """Azure ML's regression metrics; the normalized errors are divided by the range of
    the target, as Azure's are."""
    import numpy as np
    from scipy import stats  # type: ignore[import-untyped]
    from sklearn import metrics

    predicted = estimator.predict(x)
    values = np.concatenate([np.asarray(y_train, dtype=float), np.asarray(y, dtype=float)])
    spread = float(values.max() - values.min()) or 1.0
    rmse = math.sqrt(metrics.mean_squared_error(y, predicted, sample_weight=weight))
    mae = float(metrics.mean_absolute_error(y, predicted, sample_weight=weight))
    rho = stats.spearmanr(y, predicted).statistic
    return {
        "normalized_root_mean_squared_error": rmse / spread,
        "normalized_mean_absolute_error": mae / spread,
        "r2_score": float(metrics.r2_score(y, predicted, sample_weight=weight)),
        "spearman_correlation": float(rho) if rho == rho else math.nan,
    }


class _Trials:
    """FLAML's log, followed as it is written: each configuration evaluated, a child run
    of the job (`trial0`, `trial1`, …) with its algorithm, parameters and metrics."""

    def __init__(self, log: Path, run: Run, settings: Mapping[str, Any], primary: str) -> None:
        self.log, self.run, self.primary = log, run, primary
        self.algorithms: Mapping[str, str] = settings["algorithms"]
        self.offset = 0
        self.count = 0
        self.records: dict[float, dict[str, Any]] = {}  # validation loss → the first's metrics
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._follow, name="automl-trials", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> None:
        self.stopped.set()
        self.thread.join()
        self._read()

    def best(self, loss: float) -> dict[str, Any] | None:
        """The metrics of the first configuration that reached FLAML's best loss."""
        return self.records.get(loss) or (self.records[min(self.records)] if self.records else None)

    def _follow(self) -> None:
        while not self.stopped.wait(_EVERY):
            self._read()

    def _read(self) -> None:
        try:
            with self.log.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in chunk[: end + 1].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "record_id" in record:
                self._child(record)

    def _child(self, record: Mapping[str, Any]) -> None:
        learner = str(record.get("learner"))
        logged = record.get("logged_metric")
        scores = {
            k: float(v)
            for k, v in (logged if isinstance(logged, dict) else {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        loss = float(record.get("validation_loss", math.inf))
        self.records.setdefault(loss, scores)
        config = record.get("config") if isinstance(record.get("config"), dict) else {}
        with self.run.child(f"trial{self.count}") as child:
            child.log_params(
                {
                    "algorithm": self.algorithms.get(learner, learner),
                    "learner": learner,
                    "sample_size": record.get("sample_size"),
                    **{str(k): v for k, v in (config or {}).items()},
                }
            )
            for key, value in scores.items():
                if not math.isnan(value):
                    child.log(key, value)
            child.log("train_time", float(record.get("trial_time") or 0.0))
            child.log("validation_loss", loss)
        self.count += 1


def _lean(automl: Any) -> Any:
    """The fitted AutoML object with only what `predict` and `predict_proba` use: the
    best model, the column transformer and the label encoder. The search's state stays
    behind: it holds the metric function (of this module, so loading would need mlform)
    and, where Ray is installed, Ray Tune's objects (so loading would need Ray)."""
    from types import SimpleNamespace

    lean = object.__new__(type(automl))
    lean._trained_estimator = automl._trained_estimator
    lean._transformer = automl._transformer
    lean._label_transformer = automl._label_transformer
    lean._state = SimpleNamespace(task=automl._state.task)
    lean._estimator_type = automl._estimator_type  # what scikit-learn asks of a model
    lean.preserve_checkpoint = True  # its __del__ asks: the best model's files are kept
    return lean


def _save(automl: Any, x: Any, folder: Path, learners: list[str]) -> None:
    """The best model as an MLflow model (scikit-learn flavour: FLAML's AutoML object,
    whose predict takes the training columns), with its signature and the requirements
    that load it."""
    import importlib.metadata
    import logging

    import mlflow.sklearn
    from mlflow.models import infer_signature

    sample = x.head(5)
    packages = [
        "flaml",
        "scikit-learn",
        "pandas",
        *(LIBRARIES[k] for k in learners if k in LIBRARIES),
    ]
    requirements = []
    for package in packages:
        try:
            requirements.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    if folder.exists() and not any(folder.iterdir()):
        folder.rmdir()  # MLflow writes the model's folder itself
    # its warning about pickle is what the choice of cloudpickle, below, says
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
    mlflow.sklearn.save_model(
        automl,
        str(folder),
        signature=infer_signature(sample, automl.predict(sample)),
        input_example=sample,
        pip_requirements=requirements,
        # FLAML's AutoML object is not one skops (MLflow 3's default) can rebuild
        serialization_format="cloudpickle",
    )


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
