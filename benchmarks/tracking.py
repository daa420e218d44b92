"""Experiment tracking against MLflow on its SQLite store, side by side in one run.

Targets (issue acceptance), each as a ratio mlform ÷ MLflow:
- logging: SDK `run.log(key, value, step=)` calls per second, final flush included,
  ≥ 20 × `mlflow.log_metric`;
- ingest: 1,000,000 points the SDK wrote, moved into the state by the code apply runs
  (`TrackingRecord.write`, in one state transaction), ≥ 100 × the points per second of
  `MlflowClient().log_batch` in batches of 1,000;
- history: reading one metric's 10,000 points, `mlform.runs.metric_history` on the state
  in at most 1/20 of the time of `MlflowClient().get_metric_history`.

Each side is a script run as its own process (`python tracking.py --worker …`), and
times only the part measured: not interpreter start, imports, creating MLflow's database
or opening the state. The mlform script logs like a training loop: for each of 10,000
steps, 100 keys (`train/loss`, `val/loss`, `lr`, `layer00/grad_norm`, …), so the state
it fills holds 1,000,000 points and the history read picks 10,000 of them. MLflow's
run holds what its part logged: 500 `log_metric` points, then 50,000 `log_batch` points
(5 keys × 10,000 steps), one key of which is read back. `--quick` logs 20 keys with
mlform and 2 with log_batch: histories stay 10,000 points long.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from peers import WORK, Comparison, WorkerFailed, duration, rate, report, times, worker

describe = "SDK log rate, metric ingest and history read, each against MLflow (sqlite)"

HERE = Path(__file__).resolve()
KEYS = ("train/loss", "val/loss", "lr", *(f"layer{n:02d}/grad_norm" for n in range(97)))
HISTORY_KEY = "train/loss"
RUN_ID = "bench-run"

# (steps, keys the mlform script logs at each, runs of that script, MLflow log_metric
#  calls, keys logged by MLflow's log_batch at each step, history reads)
FULL = (10_000, 100, 3, 500, 5, 5)
QUICK = (10_000, 20, 1, 200, 2, 3)

TARGET_LOG = 20.0
TARGET_INGEST = 100.0
TARGET_HISTORY = 20.0


def run(*, quick: bool = False) -> bool:
    steps, keys, log_runs, mlflow_calls, batch_keys, reads = QUICK if quick else FULL
    root = WORK / "tracking"
    if root.exists():
        shutil.rmtree(root)
    (root / "mlflow").mkdir(parents=True)
    try:
        logged = [
            worker(HERE, "log", str(root / f"run-{i}"), str(steps), str(keys))
            for i in range(log_runs)
        ]
        points = steps * keys
        for i, result in enumerate(logged):
            _check_lines(root / f"run-{i}" / "metrics.csv", result["calls"], points)
        ingested = worker(HERE, "ingest", str(root / "run-0"), str(root / "state.duckdb"), "3")
        if ingested["points"] != points:
            raise WorkerFailed(f"ingest stored {ingested['points']:,} points, not {points:,}")
        history = worker(HERE, "history", str(root / "state.duckdb"), str(reads))
        if history["points"] != steps:
            raise WorkerFailed(f"history read {history['points']:,} points, not {steps:,}")
        peer = worker(
            HERE,
            "mlflow",
            str(root / "mlflow"),
            str(mlflow_calls),
            str(steps),
            str(batch_keys),
            str(reads),
            cwd=root / "mlflow",
        )
        if peer["history_points"] != steps:
            raise WorkerFailed(f"MLflow read {peer['history_points']:,} points, not {steps:,}")
    except WorkerFailed as err:
        print(f"   a side failed, so there is no figure. {err}")
        return False

    log_seconds = statistics.median(r["seconds"] for r in logged)
    log_rate = points / log_seconds
    mlflow_log_rate = peer["log_calls"] / peer["log_seconds"]
    ingest_seconds = statistics.median(ingested["seconds"])
    ingest_rate = points / ingest_seconds
    batch_rate = peer["batch_points"] / peer["batch_seconds"]
    ours_history = statistics.median(history["seconds"])
    their_history = statistics.median(peer["history_seconds"])

    ok = report(
        f"MLflow {peer['version']}",
        [
            Comparison(
                "log a point (run.log / log_metric)",
                rate(points, log_seconds),
                rate(peer["log_calls"], peer["log_seconds"]),
                log_rate / mlflow_log_rate,
                TARGET_LOG,
            ),
            Comparison(
                f"store {points:,} points (ingest / log_batch)",
                rate(points, ingest_seconds),
                rate(peer["batch_points"], peer["batch_seconds"]),
                ingest_rate / batch_rate,
                TARGET_INGEST,
            ),
            Comparison(
                f"read a {steps:,}-point history",
                duration(ours_history),
                duration(their_history),
                their_history / ours_history,
                TARGET_HISTORY,
            ),
        ],
    )
    flush = _median(logged, "flush_seconds")
    print(
        f"   mlform  {points:,} points ({steps:,} steps × {keys} keys): log {log_seconds:.2f} s "
        f"(last flush {flush * 1000:.0f} ms) · ingest {_spread(ingested['seconds'])} · "
        f"history {_spread(history['seconds'])}"
    )
    print(
        f"   MLflow  log_metric ×{peer['log_calls']:,} {peer['log_seconds']:.2f} s · log_batch "
        f"×{peer['batch_points']:,} {peer['batch_seconds']:.2f} s · history "
        f"{_spread(peer['history_seconds'])}"
    )
    best = min(peer["history_seconds"]) / min(history["seconds"])
    print(
        f"   history on best times only: {times(best)} (most MLflow reads also run a full "
        "garbage collection of its objects)"
    )
    return ok


def _check_lines(path: Path, calls: int, points: int) -> None:
    """Every logged point reached metrics.csv, one line each."""
    with path.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    if calls != points or lines != points:
        raise WorkerFailed(f"{path}: {calls:,} calls wrote {lines:,} lines, not {points:,}")


def _median(results: list[dict[str, Any]], name: str) -> float:
    return statistics.median(r[name] for r in results)


def _spread(seconds: list[float]) -> str:
    """Median (best) of several timings."""
    best = duration(min(seconds)).split()[0]
    return f"{duration(statistics.median(seconds))} (best {best})"


# -- the scripts each side runs ----------------------------------------------------------


def _log(run_dir: str, steps: str, keys: str) -> dict[str, Any]:
    """A training loop's logging: every key at every step, through `mlform.get_run()`."""
    import os

    os.environ["MLFORM_RUN_DIR"] = run_dir
    os.environ["MLFORM_RUN_ID"] = RUN_ID
    import mlform

    run = mlform.get_run()
    values = [1.0 / (1 + step) for step in range(int(steps))]
    names = KEYS[: int(keys)]
    log = run.log
    started = time.perf_counter()
    for step, value in enumerate(values):
        for name in names:
            log(name, value, step=step)
    flushing = time.perf_counter()
    run.flush()
    ended = time.perf_counter()
    calls = len(values) * len(names)
    return {"calls": calls, "seconds": ended - started, "flush_seconds": ended - flushing}


def _ingest(run_dir: str, state: str, repeats: str) -> dict[str, Any]:
    """What apply does when a run ends: its folder into the state, in one transaction."""
    from mlform.state.store import Store
    from mlform.tracking.record import TrackingRecord

    seconds = []
    points = 0
    for _ in range(int(repeats)):  # each into a new state; the last one is kept
        path = Path(state)
        for stale in path.parent.glob(f"{path.name}*"):
            stale.unlink()
        with Store.open(path, "bench", write=True) as store:
            started = time.perf_counter()
            with store.transaction() as con:
                TrackingRecord(RUN_ID, Path(run_dir)).write(con, "bench-apply")
            seconds.append(time.perf_counter() - started)
            found = store.query("select count(*) from metrics where run_id = ?", [RUN_ID])
            points = int(found[0][0])
    return {"points": points, "seconds": seconds}


def _history(state: str, reads: str) -> dict[str, Any]:
    """`mlform runs metrics`' read: one key's points of one run, in step order."""
    from mlform import runs
    from mlform.state.store import Store

    seconds = []
    with Store.open(Path(state), "bench", write=False) as store:
        points = runs.metric_history(store, RUN_ID, HISTORY_KEY)  # first use: not timed
        for _ in range(int(reads)):
            started = time.perf_counter()
            points = runs.metric_history(store, RUN_ID, HISTORY_KEY)
            seconds.append(time.perf_counter() - started)
    steps = [p[1] for p in points]
    if steps != sorted(steps) or {p[0] for p in points} != {HISTORY_KEY}:
        raise SystemExit("metric_history returned points out of order or of another key")
    return {"points": len(points), "seconds": seconds}


def _mlflow(folder: str, calls: str, steps: str, keys: str, reads: str) -> dict[str, Any]:
    """The same three jobs through MLflow's own API on a sqlite tracking store."""
    import logging

    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    client = MlflowClient()
    with mlflow.start_run() as active:  # creates the database: not timed
        run_id = active.info.run_id
        log_calls = int(calls)
        names = KEYS[: max(1, log_calls // 5)]  # 5 steps of up to 100 keys
        started = time.perf_counter()
        for step in range(log_calls // len(names)):
            for name in names:
                mlflow.log_metric(name, 1.0 / (1 + step), step=step)
        log_seconds = time.perf_counter() - started
        logged = (log_calls // len(names)) * len(names)

        stamp = int(time.time() * 1000)
        points = [
            Metric(f"k{k}", 1.0 / (1 + step), stamp, step)
            for k in range(int(keys))
            for step in range(int(steps))
        ]
        chunks = [points[i : i + 1000] for i in range(0, len(points), 1000)]
        started = time.perf_counter()
        for chunk in chunks:
            client.log_batch(run_id, metrics=chunk)
        batch_seconds = time.perf_counter() - started

        history = client.get_metric_history(run_id, "k0")  # first use: not timed
        seconds = []
        for _ in range(int(reads)):
            started = time.perf_counter()
            history = client.get_metric_history(run_id, "k0")
            seconds.append(time.perf_counter() - started)
    return {
        "version": mlflow.__version__,
        "log_calls": logged,
        "log_seconds": log_seconds,
        "batch_points": len(points),
        "batch_seconds": batch_seconds,
        "history_points": len(history),
        "history_seconds": seconds,
    }


WORKERS = {"log": _log, "ingest": _ingest, "history": _history, "mlflow": _mlflow}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(WORKERS[sys.argv[2]](*sys.argv[3:])))
    else:
        sys.exit(0 if run(quick="--quick" in sys.argv) else 1)
