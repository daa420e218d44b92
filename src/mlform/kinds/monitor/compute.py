"""One run of a monitor: its signals computed over the deployment's captured requests in
a window, against the reference data, recorded as a run (`MonitorRun`).

- **Which model.** The version the deployment serves now, as the state records it.
- **Reference data.** The signal's `reference_data.input_data.path`, else the data asset
  the run that registered that model version read (its lineage); a run that read several
  names the input whose name says training (`train…`), else the signal must say which.
- **Production data.** The captured requests of the deployment with `ts` in the window:
  `[end - lookback_window_size, end)` with `end = now - lookback_window_offset`; without a
  size, from where the monitor's previous run ended (or the instant it was applied) to now.
- **Features.** The signal's list, else every column the requests carry: by key for
  records, by position against the reference's columns less the target for rows. Of
  those, `top_n_feature_importance` keeps the ones the model's `feature_importance.json`
  ranks highest. The
  target column is the signal's `target_column_name` (or `data_column_names.target_column`),
  else the one reference column the requests lack.
- **Signals.** data drift over the features; prediction drift of the deployment's
  outputs against the reference's target column; data quality of the features; model
  performance of the outputs against the ground truth joined on the request id. Each
  metric is held to the signal's `metric_thresholds` for the feature's type, else to
  Azure's defaults (monitoring/metrics.py).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import duckdb

from mlform import datasets
from mlform.config.refs import parse_asset_ref
from mlform.context import Context
from mlform.errors import MlformError
from mlform.hashing import Hasher
from mlform.kinds.monitor.spec import DATA, MONITOR_VALUE, MonitorSpec, Signal
from mlform.loader import Config
from mlform.registry import models
from mlform.state.monitors import MonitorRun, Value
from mlform.state.runs import RunRow
from mlform.state.store import Store
from mlform.storage import Storage
from mlform.storage.blobs import blob_key

EXPERIMENT = "monitors"
# The file among a model's files that ranks its features (top_n_feature_importance)
IMPORTANCE = "feature_importance.json"
_IMPORTANCE_LIMIT = 1 << 20
PREDICTION = "prediction"  # the production relation's column of the deployment's outputs


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime


def window(signal: Signal, since: datetime, now: datetime) -> Window:
    end = now - signal.offset
    start = end - signal.window if signal.window is not None else since
    return Window(min(start, end), end)


def run(
    config: Config, store: Store, spec: MonitorSpec, since: datetime, now: datetime
) -> MonitorRun:
    """Compute every signal of `spec`; `since`: where a window without a size starts."""
    # start-up: the metrics (NumPy, SciPy) only for a monitor's run
    from mlform.monitoring import production as captured

    model = served_model(store, spec)
    ctx = Context(config, Hasher(None))
    storage = ctx.storage(config.default_datastore)
    root = storage.local_path("")
    run_id = f"{spec.name}_{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(2)}"
    started = time.time()
    values: list[Value] = []
    inputs: dict[str, str] = {"model": model}
    windows: list[Window] = []
    tables: dict[str, str] = {}  # signal → its production table
    window_file: str | None = None
    con = duckdb.connect()
    captures = str(root / "captures") if root is not None else _in_the_cloud(con, storage)
    try:
        for index, signal in enumerate(spec.signals):
            item = reference(store, signal, model, spec)
            inputs[f"{signal.name}.reference"] = f"{item.name}:{item.version}"
            span = window(signal, since, now)
            windows.append(span)
            with datasets.table_files(config, item) as (reader, paths):
                listed = ", ".join(_literal(p) for p in paths)
                con.execute(
                    f"create or replace view reference as select * from {reader}([{listed}])"
                )
                columns = [row[0] for row in con.execute("describe reference").fetchall()]
                here = (captures, spec.endpoint, spec.deployment, span.start, span.end)
                if signal.type == "model_performance":
                    production = captured.production(
                        con, *here, (), outputs=PREDICTION, name=f"production_{index}"
                    )
                    tables[signal.name] = production
                    values.extend(_performance(con, signal, spec, item, columns, production))
                    continue
                features = list(signal.features or ()) or captured.infer_features(
                    con, *here, columns, signal.target_column
                )
                target = signal.target_column or _target(columns, features)
                # rows of values give them to the features by position: all are read
                watched = (
                    features
                    if signal.top_n is None
                    else _most_important(ctx, store, model, features, signal, spec)
                )
                production = captured.production(
                    con, *here, features, outputs=PREDICTION, name=f"production_{index}"
                )
                tables[signal.name] = production
                values.extend(_signal(con, signal, production, watched, target))
        breached = [tables[v.signal] for v in values if v.breached and v.signal in tables]
        if breached and DATA in _monitor_values(spec):
            kept = root if root is not None else config.home  # the job reads it here
            window_file = _keep(con, breached[0], kept, spec.name, run_id)
            inputs[DATA] = window_file
    except duckdb.Error as err:
        raise MlformError(f"monitor/{spec.name}: {err}") from err
    finally:
        con.close()
    ended = time.time()
    row = RunRow(
        id=run_id,
        experiment=EXPERIMENT,
        name=spec.name,
        status="completed",
        compute="local",
        run_dir="",
        runconfig=spec.address,
        display_name=f"{spec.name} of {spec.target}",
        created_at=started,
        started_at=started,
        ended_at=ended,
        inputs=inputs,
    )
    start = min(w.start for w in windows)
    end = max(w.end for w in windows)
    return MonitorRun(row, spec.address, start, end, values, window_file)


def _most_important(
    ctx: Context,
    store: Store,
    model: str,
    features: Sequence[str],
    signal: Signal,
    spec: MonitorSpec,
) -> list[str]:
    """The `signal.top_n` of `features` that `model` ranks highest in the importances it
    exposes (IMPORTANCE among its files), by absolute value; ties by name."""
    assert signal.top_n is not None
    version = models.resolve(store.read, model)
    where = f"monitor/{spec.name}: signal {signal.name}"
    entries = [e for e in version.files if PurePosixPath(e["path"]).name == IMPORTANCE]
    if not entries:
        raise MlformError(
            f"{where} monitors the {signal.top_n} most important features, but model "
            f"{model} exposes no importances: have its training write {IMPORTANCE} "
            '({"feature": importance, …}) beside the model, or list the features under '
            "`features:`"
        )
    entry = min(entries, key=lambda e: (str(e["path"]).count("/"), str(e["path"])))
    with ctx.storage(version.datastore).open(blob_key(entry["sha256"])) as handle:
        raw = handle.read(_IMPORTANCE_LIMIT + 1)
    try:
        found = json.loads(raw) if len(raw) <= _IMPORTANCE_LIMIT else None
    except ValueError:
        found = None
    if not isinstance(found, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in found.values()
    ):
        raise MlformError(
            f"{where}: {entry['path']} of model {model} is not a JSON object of feature → "
            f"number (at most {_IMPORTANCE_LIMIT // 1024} KiB); its training writes it"
        )
    ranked = sorted(
        ((abs(float(v)), str(k)) for k, v in found.items() if k in features),
        key=lambda item: (-item[0], item[1]),
    )
    if not ranked:
        raise MlformError(
            f"{where}: none of the features {entry['path']} of model {model} ranks "
            f"({', '.join(sorted(map(str, found))) or 'none'}) is among those the requests "
            f"carry ({', '.join(features)})"
        )
    return [name for _, name in ranked[: signal.top_n]]


def _monitor_values(spec: MonitorSpec) -> set[str]:
    """The `${{monitor.…}}` values its on_breach hands the job it runs."""
    return {
        found[1] for value in spec.on_breach_with.values() if (found := MONITOR_VALUE.match(value))
    }


def _keep(con: duckdb.DuckDBPyConnection, table: str, root: Path, monitor: str, run_id: str) -> str:
    """Write the production rows of a breached signal to the datastore for the job its
    on_breach runs: `monitors/<monitor>/<run id>/production.csv`, with a header. CSV, as
    Azure's and scikit-learn's examples read training data: pandas reads it without
    pyarrow, which a training environment may lack."""
    folder = root / "monitors" / monitor / run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "production.csv"
    con.execute(f"COPY (SELECT * FROM {table}) TO {_literal(str(path))} (FORMAT csv, HEADER)")
    return str(path)


def _in_the_cloud(con: duckdb.DuckDBPyConnection, storage: Storage) -> str:
    """The URL of the captures on a datastore in Azure Blob Storage or S3, which the
    deployments' outbox moves there (storage/captures.py), read by DuckDB through the
    datastore's own fsspec filesystem and credentials."""
    # start-up: the fsspec backend only for a datastore in the cloud
    from mlform.storage.remote import FsspecStorage

    if not isinstance(storage, FsspecStorage):
        raise MlformError(
            f"monitors read captured requests from a folder or an fsspec URL; the default "
            f"datastore is {storage.url}"
        )
    con.register_filesystem(storage.fs)
    protocol = storage.fs.protocol
    scheme = protocol if isinstance(protocol, str) else protocol[0]
    return f"{scheme}://{storage.root.strip('/')}/captures"


def served_model(store: Store, spec: MonitorSpec) -> str:
    rows = store.query(
        "select model from deployments where endpoint = ? and name = ? "
        "and status in ('running', 'creating')",
        [spec.endpoint, spec.deployment],
    )
    if not rows:
        raise MlformError(
            f"monitor/{spec.name}: deployment {spec.target} is not running; apply its "
            "endpoint first (`mlform apply`)"
        )
    return str(rows[0][0])


def reference(store: Store, signal: Signal, model: str, spec: MonitorSpec) -> datasets.DataVersion:
    """The data `signal` compares against: named, or what `model` was trained on."""
    if signal.reference is not None:
        return datasets.resolve(store, str(signal.reference))
    version = models.resolve(store.read, model)
    found = models.lineage(store.read, version)
    inputs = found.inputs if found is not None else {}
    data = {
        name: item
        for name, value in inputs.items()
        if isinstance(value, str) and (item := _data(store, value)) is not None
    }
    training = [n for n in data if n.lower().startswith("train")] if len(data) > 1 else list(data)
    if len(training) == 1:
        return data[training[0]]
    why = (
        f"the run that registered {model} read no data asset"
        if not data
        else f"the run that registered {model} read several ({', '.join(sorted(data))})"
    )
    raise MlformError(
        f"monitor/{spec.name}: signal {signal.name} has no reference data: {why}; name it "
        f"under reference_data.input_data.path (azureml:NAME:VERSION)"
    )


def _data(store: Store, value: str) -> datasets.DataVersion | None:
    ref = parse_asset_ref(value)
    if ref is None or ref.version is None:
        return None
    try:
        return datasets.resolve(store, value)
    except MlformError:
        return None


def _target(columns: Sequence[str], features: Sequence[str]) -> str | None:
    left = [c for c in columns if c not in features]
    return left[0] if len(left) == 1 else None


def _signal(
    con: duckdb.DuckDBPyConnection,
    signal: Signal,
    production: str,
    features: Sequence[str],
    target: str | None,
) -> list[Value]:
    # start-up: the metrics (NumPy, SciPy) only for a monitor's run
    from mlform.monitoring import metrics, quality

    if signal.type == "prediction_drift":
        if target is None:
            return [_note(signal, "no target column: set reference_data.target_column_name")]
        con.execute(
            f"create or replace view reference_prediction as select {_name(target)} as "
            f"{PREDICTION} from reference"
        )
        reference, features = "reference_prediction", [PREDICTION]
    else:
        reference = "reference"
    types = metrics.feature_types(con, reference, features)
    if signal.type == "data_quality":
        results = quality.data_quality(con, reference, production, types, _asked(signal))
    else:
        results = metrics.data_drift(con, reference, production, types, _asked(signal))
    found: list[Value] = []
    for result in results:
        values = _wanted(signal, result.type, result.values)
        thresholds = _thresholds(signal, result.type, values)
        breaching = set(result.breaches(thresholds))
        for metric, value in values.items():
            found.append(
                Value(
                    signal.name,
                    signal.type,
                    result.feature,
                    metric,
                    value,
                    thresholds.get(metric),
                    metric in breaching,
                    result.note,
                )
            )
    return found


def _performance(
    con: duckdb.DuckDBPyConnection,
    signal: Signal,
    spec: MonitorSpec,
    truth: datasets.DataVersion,
    columns: Sequence[str],
    production: str,
) -> list[Value]:
    """The model's performance over the window: each captured row's prediction paired
    with the ground truth whose correlation id names its request (`<x-request-id>/<row>`
    in a request of several rows)."""
    # start-up: the metrics only for a monitor's run
    from mlform.monitoring import performance

    task = signal.task(spec.ml_task)
    actual, key = signal.target_column, signal.correlation_column
    assert task is not None and actual is not None  # validated: MonitorSpec.problems
    missing = [c for c in (actual, key) if c not in columns]
    if missing:
        raise MlformError(
            f"monitor/{spec.name}: signal {signal.name}: the ground truth "
            f"{truth.name}:{truth.version} has no column {', '.join(f'`{c}`' for c in missing)}"
            f" (its columns: {', '.join(columns)}); name its columns under "
            "reference_data.data_column_names (actual, correlation_id)"
        )
    con.execute(
        f"""create or replace temp view pairs as
            select p.{PREDICTION} as prediction, g.{_name(actual)} as ground_truth
            from (select {PREDICTION}, case when count(*) over (partition by request_id, ts) = 1
                         then request_id else request_id || '/' || row end as correlation
                  from {production}) p
            join reference g on cast(g.{_name(key)} as varchar) = p.correlation"""
    )
    result = performance.model_performance(con, "pairs", task)
    thresholds = signal.thresholds.get(f"tabular_{task}") or {}
    breaching = set(result.breaches(thresholds))
    return [
        Value(
            signal.name,
            signal.type,
            None,
            metric,
            value,
            thresholds.get(metric),
            metric in breaching,
            result.note,
        )
        for metric, value in result.values.items()
    ]


def _asked(signal: Signal) -> list[str] | None:
    """The metrics the signal's thresholds name, and for a feature type it names none of,
    the default one (data drift); None: the defaults."""
    # start-up: the metrics (NumPy, SciPy) only for a monitor's run
    from mlform.monitoring import metrics

    named = {m for kind in signal.thresholds.values() for m in kind}
    if not named:
        return None
    if signal.type != "data_quality":
        for kind, metric in metrics.DEFAULT_DRIFT_METRICS.items():
            if not signal.thresholds.get(kind):
                named.add(metric)
    return sorted(named)


def _wanted(
    signal: Signal, kind: str, values: Mapping[str, float | None]
) -> dict[str, float | None]:
    """A drift feature's values of the metrics its type's thresholds name (else of its
    type's default metric): computing one asked for the other type computes it for
    both. Data quality keeps them all."""
    # start-up: the metrics (NumPy, SciPy) only for a monitor's run
    from mlform.monitoring import metrics

    if signal.type == "data_quality":
        return dict(values)
    own = signal.thresholds.get(kind) or {}
    default = metrics.DEFAULT_DRIFT_METRICS["numerical" if kind == "numerical" else "categorical"]
    names = set(own) or {default}
    return {m: v for m, v in values.items() if m in names}


def _thresholds(signal: Signal, kind: str, values: Mapping[str, float | None]) -> dict[str, float]:
    """Each metric's threshold for a feature of type `kind`: the signal's, else Azure's
    default, else none (it is shown, and never breaches)."""
    from mlform.monitoring import metrics

    own = signal.thresholds.get(kind) or {}
    defaults = metrics.DEFAULT_THRESHOLDS
    return {m: own[m] if m in own else defaults[m] for m in values if m in own or m in defaults}


def _note(signal: Signal, note: str) -> Value:
    return Value(signal.name, signal.type, None, "rows", None, None, False, note)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _name(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'
