"""Experiment tracking against MLflow on its SQLite store, side by side in one run.

Targets (issue acceptance), each as a ratio mlform ÷ MLflow:
- logging: SDK `run.log(key, value, step=)` calls per second, final flush included,
  ≥ 20 × `mlflow.log_metric`, both synchronous (MLflow's default) and asynchronous
  (`synchronous=False`, its flush at the end included);
- ingest: the same points (same keys and steps) stored the same way, in batches of 1,000,
  each committed before the next: mlform loads each batch's metrics file into the state
  in its own transaction (`tracking.ingest.load_metrics`, what apply runs when a run
  ends), MLflow takes each as one `MlflowClient().log_batch` call (its limit is 1,000
  metrics a call). Points per second ≥ 100 ×. What apply really does, a run's whole
  file in one transaction, is shown beside it;
- history: what a user pays to read one metric's 10,000 points, as a command in a new
  process, on a state nobody has read since it was written: `mlform runs metrics RUN
  --key K --csv` against a script that asks `MlflowClient().get_metric_history` and
  prints the same CSV; at most 1/20 of MLflow's time. The warm figure (a second
  `mlform runs metrics`, answered from what the first one kept beside the state) and
  the query alone, in a process already running, are shown beside it.

Logging and ingest time only the part measured, inside a script run as its own process
(`python tracking.py --worker …`): not interpreter start, imports, creating MLflow's
database or opening the state. The history read is timed as whole processes.

The mlform training-loop script logs, for each of 10,000 steps, 100 keys (`train/loss`,
`val/loss`, `lr`, `layer00/grad_norm`, …): the state it fills holds 1,000,000 points and
the history read picks 10,000 of them. MLflow's run holds the 200,000 points of the
ingest job (20 of those keys × 10,000 steps), one of which, `train/loss`, is read back.
`--quick` uses 20 keys for mlform's state and 5 for the ingest job; histories stay
10,000 points long.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from peers import (
    BYTECODE,
    WORK,
    Comparison,
    WorkerFailed,
    duration,
    rate,
    report,
    timed,
    times,
    worker,
)

describe = "SDK log rate, metric ingest and history read, each against MLflow (sqlite)"

HERE = Path(__file__).resolve()
KEYS = ("train/loss", "val/loss", "lr", *(f"layer{n:02d}/grad_norm" for n in range(97)))
HISTORY_KEY = "train/loss"
RUN_ID = "bench-run"
STEPS = 10_000
BATCH = 1_000  # MLflow's most metrics in one log_batch call

# (keys the mlform script logs at each step, runs of that script, MLflow log_metric calls
#  a side, keys of the ingest job, rounds of the ingest and history comparisons)
FULL = (100, 3, 1_000, 20, 5)
QUICK = (20, 1, 500, 5, 3)

TARGET_LOG = 20.0
TARGET_INGEST = 100.0
TARGET_HISTORY = 20.0


def run(*, quick: bool = False) -> bool:
    keys, log_runs, mlflow_calls, ingest_keys, rounds = QUICK if quick else FULL
    root = WORK / "tracking"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    points = STEPS * keys
    job = STEPS * ingest_keys
    try:
        logged = [
            worker(HERE, "log", str(root / f"run-{i}"), str(STEPS), str(keys))
            for i in range(log_runs)
        ]
        for i, result in enumerate(logged):
            _check_lines(root / f"run-{i}" / "metrics.csv", result["calls"], points)
        synchronous = worker(HERE, "mlflow-log", str(root / "mlflow-sync"), str(mlflow_calls), "1")
        background = worker(HERE, "mlflow-log", str(root / "mlflow-async"), str(mlflow_calls), "0")

        # the ingest job: the same points for both sides, cut into batches of 1,000
        source = root / "job"
        worker(HERE, "log", str(source), str(STEPS), str(ingest_keys))
        batches = _batches(source / "metrics.csv", root / "batches")
        ours_ingest: list[float] = []
        ours_whole: list[float] = []
        theirs_ingest: list[float] = []
        mlflow_run = ""
        for i in range(rounds):  # taking turns, so a busier moment slows both alike
            done = worker(HERE, "ingest", str(batches), str(source), str(root / "ingest.duckdb"))
            if done["points"] != [job, job]:
                raise WorkerFailed(f"ingest stored {done['points']} points, not {job:,} each way")
            ours_ingest.append(done["batched_seconds"])
            ours_whole.append(done["whole_seconds"])
            folder = root / f"mlflow-batch-{i}"
            peer = worker(HERE, "mlflow-batch", str(folder), str(source / "metrics.csv"))
            if peer["points"] != job:
                raise WorkerFailed(f"MLflow stored {peer['points']:,} points, not {job:,}")
            theirs_ingest.append(peer["seconds"])
            mlflow_run = peer["run_id"]
            if i < rounds - 1:
                shutil.rmtree(folder)
        mlflow_db = root / f"mlflow-batch-{rounds - 1}" / "mlflow.db"

        # the history: mlform's 1,000,000-point state, read by the CLI in new processes
        workspace = _workspace(root / "workspace", root / "run-0")
        ours_cold: list[float] = []
        ours_warm: list[float] = []
        theirs_history: list[float] = []
        expected = ""
        command = [str(Path(sys.executable).parent / "mlform"), "runs", "metrics", RUN_ID]
        command += ["--key", HISTORY_KEY, "--csv"]
        script = [sys.executable, str(HERE), "--worker", "mlflow-history"]
        script += [str(mlflow_db), mlflow_run, HISTORY_KEY]
        reads = workspace / "state.duckdb.reads"
        for _ in range(rounds):
            reads.unlink(missing_ok=True)
            cold = timed(command, cwd=workspace, env=BYTECODE)
            warm = timed(command, cwd=workspace, env=BYTECODE)
            peer_read = timed(script, cwd=root, env=BYTECODE)
            expected = expected or cold.out
            if not (cold.out == warm.out == expected) or _points(peer_read.out) != _points(
                cold.out
            ):
                raise WorkerFailed("the two sides (or two reads) printed different histories")
            ours_cold.append(cold.seconds)
            ours_warm.append(warm.seconds)
            theirs_history.append(peer_read.seconds)
        if len(expected.splitlines()) != STEPS + 1:
            raise WorkerFailed(f"the history has {len(expected.splitlines()) - 1:,} points")
        queried = worker(HERE, "query", str(workspace / "state.duckdb"), str(rounds))
        peer_query = worker(HERE, "mlflow-query", str(mlflow_db), mlflow_run, str(rounds))
    except WorkerFailed as err:
        print(f"   a side failed, so there is no figure. {err}")
        return False

    log_seconds = statistics.median(r["seconds"] for r in logged)
    ours_rate = points / log_seconds
    batched = statistics.median(ours_ingest)
    whole = statistics.median(ours_whole)
    peer_batch = statistics.median(theirs_ingest)
    cold = statistics.median(ours_cold)
    peer_history = statistics.median(theirs_history)
    ok = report(
        f"MLflow {synchronous['version']}",
        [
            Comparison(
                "log a point (run.log / log_metric)",
                rate(points, log_seconds),
                rate(synchronous["calls"], synchronous["seconds"]),
                ours_rate / (synchronous["calls"] / synchronous["seconds"]),
                TARGET_LOG,
            ),
            Comparison(
                "log a point (… / log_metric synchronous=False)",
                rate(points, log_seconds),
                rate(background["calls"], background["seconds"]),
                ours_rate / (background["calls"] / background["seconds"]),
                TARGET_LOG,
            ),
            Comparison(
                f"store {job:,} points, batches of {BATCH:,}",
                rate(job, batched),
                rate(job, peer_batch),
                peer_batch / batched,
                TARGET_INGEST,
            ),
            Comparison(
                f"read a {STEPS:,}-point history (process, cold)",
                duration(cold),
                duration(peer_history),
                peer_history / cold,
                TARGET_HISTORY,
            ),
        ],
    )
    flush = _median(logged, "flush_seconds")
    print(
        f"   mlform  log {points:,} points ({STEPS:,} steps × {keys} keys) {log_seconds:.2f} s "
        f"(last flush {flush * 1000:.0f} ms) · store {job:,} in {job // BATCH} transactions "
        f"{_spread(ours_ingest)}, in one (what apply does) {_spread(ours_whole)} = "
        f"{rate(job, whole)}, {times(peer_batch / whole)} MLflow's batches"
    )
    print(
        f"   MLflow  log_metric ×{synchronous['calls']:,} {synchronous['seconds']:.2f} s · "
        f"synchronous=False ×{background['calls']:,} {background['seconds']:.2f} s (calls "
        f"{background['seconds'] - background['flush_seconds']:.2f} s, then flush "
        f"{background['flush_seconds']:.2f} s) · log_batch ×{job // BATCH} "
        f"{_spread(theirs_ingest)}"
    )
    print(
        f"   history `mlform runs metrics {RUN_ID} --key {HISTORY_KEY} --csv` cold "
        f"{_spread(ours_cold)}, warm (kept reads) {_spread(ours_warm)} · MLflow script "
        f"{_spread(theirs_history)}; {rounds} rounds taking turns"
    )
    query = statistics.median(queried["seconds"])
    peer_query_time = statistics.median(peer_query["seconds"])
    print(
        f"   history query alone, in a running process: mlform on a newly opened state "
        f"{_spread(queried['seconds'])} · MLflow get_metric_history (asked before) "
        f"{_spread(peer_query['seconds'])} = {times(peer_query_time / query)}"
    )
    return ok


def _check_lines(path: Path, calls: int, points: int) -> None:
    """Every logged point reached metrics.csv, one line each."""
    with path.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    if calls != points or lines != points:
        raise WorkerFailed(f"{path}: {calls:,} calls wrote {lines:,} lines, not {points:,}")


def _batches(metrics: Path, folder: Path) -> Path:
    """The run's metrics.csv cut into run folders of BATCH lines each, in logged order."""
    lines = metrics.read_bytes().splitlines(keepends=True)
    for n in range(math.ceil(len(lines) / BATCH)):
        batch = folder / f"{n:04d}"
        batch.mkdir(parents=True)
        (batch / "metrics.csv").write_bytes(b"".join(lines[n * BATCH : (n + 1) * BATCH]))
    return folder


def _workspace(folder: Path, run_dir: Path) -> Path:
    """A workspace whose state holds the run `run_dir` as apply records it (not timed)."""
    folder.mkdir()
    (folder / "workspace.yml").write_text(
        "name: tracking-bench\nstate: state.duckdb\n", encoding="utf-8"
    )
    worker(HERE, "record", str(run_dir), str(folder / "state.duckdb"))
    return folder


def _points(printed: str) -> list[tuple[str, str, str]]:
    """(key, step, value) of each printed point: the two runs were logged at other times."""
    return [(k, step, value) for k, step, _, value in csv.reader(printed.splitlines())]


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


def _ingest(batches: str, run_dir: str, state: str) -> dict[str, Any]:
    """The job both ways into new states: batch by batch, each its own transaction; then
    the whole run at once, as apply does when a run ends."""
    from mlform.state.store import Store
    from mlform.tracking.ingest import load_metrics
    from mlform.tracking.record import TrackingRecord

    folders = sorted(Path(batches).iterdir())
    path = Path(state)
    stored = []
    seconds = []
    for whole in (False, True):
        for stale in path.parent.glob(f"{path.name}*"):
            stale.unlink()
        with Store.open(path, "bench", write=True) as store:
            started = time.perf_counter()
            if whole:
                with store.transaction() as con:
                    TrackingRecord(RUN_ID, Path(run_dir)).write(con, "bench-apply")
            else:
                for folder in folders:
                    with store.transaction() as con:
                        load_metrics(con, RUN_ID, folder)
            seconds.append(time.perf_counter() - started)
            found = store.query("select count(*) from metrics where run_id = ?", [RUN_ID])
            stored.append(int(found[0][0]))
    return {"points": stored, "batched_seconds": seconds[0], "whole_seconds": seconds[1]}


def _record(run_dir: str, state: str) -> dict[str, Any]:
    """A finished run in a new state, as apply leaves it: its row, then its records."""
    from mlform.state.runs import Experiment, RunRow
    from mlform.state.store import Store
    from mlform.tracking.record import TrackingRecord

    now = time.time()
    row = RunRow(RUN_ID, "bench", "train", "completed", "local", run_dir, created_at=now)
    with Store.open(Path(state), "bench", write=True) as store:
        records = [Experiment("bench"), row, TrackingRecord(RUN_ID, Path(run_dir))]
        store.write("bench-apply", records)
    return {}


def _query(state: str, reads: str) -> dict[str, Any]:
    """`runs.metric_history` alone, each time on a newly opened state with no kept reads."""
    from mlform import runs
    from mlform.state.store import Store

    path = Path(state)
    kept = path.with_name(path.name + ".reads")
    seconds = []
    for _ in range(int(reads)):
        kept.unlink(missing_ok=True)
        with Store.open(path, "bench", write=False) as store:
            store.query("select 1")  # connects: opening DuckDB is not the query
            started = time.perf_counter()
            points = runs.metric_history(store, RUN_ID, HISTORY_KEY)
            seconds.append(time.perf_counter() - started)
        if len(points) != STEPS:
            raise SystemExit(f"metric_history read {len(points):,} points")
    kept.unlink(missing_ok=True)
    return {"seconds": seconds}


def _mlflow_log(folder: str, calls: str, synchronous: str) -> dict[str, Any]:
    """`mlflow.log_metric` in the same loop shape (steps of up to 100 keys)."""
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    Path(folder).mkdir(parents=True)
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    wait = synchronous == "1"
    count = int(calls)
    names = KEYS[: max(1, min(100, count // 20))]
    with mlflow.start_run():  # creates the database: not timed
        started = time.perf_counter()
        for step in range(count // len(names)):
            for name in names:
                mlflow.log_metric(name, 1.0 / (1 + step), step=step, synchronous=wait)
        flushing = time.perf_counter()
        if not wait:
            mlflow.flush_async_logging()
        ended = time.perf_counter()
        run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    logged = len(mlflow.MlflowClient().get_metric_history(run_id, names[0])) * len(names)
    return {
        "version": mlflow.__version__,
        "calls": (count // len(names)) * len(names),
        "stored": logged,
        "seconds": ended - started,
        "flush_seconds": ended - flushing,
    }


def _mlflow_batch(folder: str, metrics: str) -> dict[str, Any]:
    """The ingest job through `MlflowClient().log_batch`, 1,000 points a call."""
    import logging

    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    Path(folder).mkdir(parents=True)
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    client = MlflowClient()
    with open(metrics, newline="", encoding="utf-8") as handle:
        points = [Metric(k, float(v), int(ts), int(step)) for k, step, ts, v in csv.reader(handle)]
    with mlflow.start_run() as active:  # creates the database: not timed
        run_id = active.info.run_id
        started = time.perf_counter()
        for i in range(0, len(points), BATCH):
            client.log_batch(run_id, metrics=points[i : i + BATCH])
        seconds = time.perf_counter() - started
    stored = sum(len(client.get_metric_history(run_id, k)) for k in {p.key for p in points})
    return {"run_id": run_id, "points": stored, "seconds": seconds}


def _mlflow_history(db: str, run_id: str, key: str) -> None:
    """What a user runs to see one metric's history with MLflow: the client, printed as
    `mlform runs metrics --csv` prints it."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["key", "step", "timestamp", "value"])
    out.writerows((m.key, m.step, m.timestamp, m.value) for m in history)


def _mlflow_query(db: str, run_id: str, reads: str) -> dict[str, Any]:
    """`get_metric_history` alone, in a process that already asked once."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    client.get_metric_history(run_id, HISTORY_KEY)
    seconds = []
    for _ in range(int(reads)):
        started = time.perf_counter()
        client.get_metric_history(run_id, HISTORY_KEY)
        seconds.append(time.perf_counter() - started)
    return {"seconds": seconds}


WORKERS = {
    "log": _log,
    "ingest": _ingest,
    "record": _record,
    "query": _query,
    "mlflow-log": _mlflow_log,
    "mlflow-batch": _mlflow_batch,
    "mlflow-query": _mlflow_query,
}


if __name__ == "__main__":
    if sys.argv[1:3] == ["--worker", "mlflow-history"]:
        _mlflow_history(*sys.argv[3:])
    elif sys.argv[1:2] == ["--worker"]:
        print(json.dumps(WORKERS[sys.argv[2]](*sys.argv[3:])))
    else:
        sys.exit(0 if run(quick="--quick" in sys.argv) else 1)
