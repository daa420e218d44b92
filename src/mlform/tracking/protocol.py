"""The run protocol: the files a run's process writes into its run folder.

A run's process never opens the DuckDB state (only one process may hold it): it writes
these files and mlform reads them, live while the run goes (`mlform.tracking.tail`) and in
bulk when it ends (`mlform.tracking.ingest`). The same files work on every compute
target, because a run folder is only a folder: local, mounted into a container, or copied
back from another machine.

    RUN_DIR/
      outputs/          MLFORM_OUTPUTS: files the script leaves for mlform to keep
      logs/             the command's stdout and stderr (written by the compute target)
      metrics.csv       metric points: key,step,timestamp_ms,value
      params.jsonl      one JSON object of key → string per line; a later line wins
      tags.jsonl        the same, for tags
      artifacts/        files and folders given to `Run.upload`, under their names
      run.json          {"id", "name", "status", "started_ms", "ended_ms"}
      children/NAME/    one child run each: the same layout (no outputs/ or logs/)
      mlflow.db         the MLflow store: MLFLOW_TRACKING_URI points here
      mlflow_run.json   {"run_id", "experiment_id"} of the job's own MLflow run (MLFLOW_RUN_ID)

Why these formats:
- Metrics are the high-volume record. CSV without a header, appended in batches, is what
  DuckDB's built-in reader bulk-loads fastest (no per-line Python at ingest), and it keeps
  NaN and infinities, which JSON cannot. A key containing `,` or `"` is quoted as RFC 4180
  says (`"a,b"`; a quote inside is doubled); keys never contain line breaks. The value is Python's
  `repr` of a float (`0.5`, `1e-05`, `nan`, `inf`, `-inf`).
- Params and tags are few and written when set: JSON lines, append-only, so a second
  `log_params` call or a second process never rewrites what an earlier one wrote. Values
  are strings, as MLflow stores them (`str(value)`).
- Every file is only ever appended to in whole lines, or (run.json) replaced atomically,
  so a reader never keeps half a record, and a crashed writer loses at most what it had
  not flushed. A torn last line (a writer killed mid-write) is skipped by readers.
- run.json is written by the SDK for child runs and offline runs. The status of a run
  mlform started is mlform's to record (from the exit code), so the SDK writes none there.
  Statuses are those of `mlform.state.runs.STATUSES`.
- MLflow's file store is retired in MLflow 3 (it refuses to open unless told to), so
  MLflow scripts log into a SQLite store, which mlform reads with the standard library's
  `sqlite3`, never importing mlflow. MLflow keeps artifacts where its experiment says:
  by default `mlruns/` under the script's working directory. Their locations are in the
  store, and ingest follows them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from mlform import durable

METRICS = "metrics.csv"
PARAMS = "params.jsonl"
TAGS = "tags.jsonl"
ARTIFACTS = "artifacts"
CHILDREN = "children"
RUN_INFO = "run.json"
OUTPUTS = "outputs"
LOGS = "logs"
MLFLOW_DB = "mlflow.db"
MLFLOW_RUN = "mlflow_run.json"

METRIC_COLUMNS = {"key": "VARCHAR", "step": "BIGINT", "ts": "BIGINT", "value": "DOUBLE"}
"""The columns of metrics.csv, in order, with the DuckDB type each is read as."""

_NEEDS_QUOTES = frozenset(',"')


def mlflow_tracking_uri(run_dir: Path) -> str:
    """The MLFLOW_TRACKING_URI that makes MLflow log into this run's own store."""
    # start-up: urllib.request is slow to import; the SDK in a training script needs it rarely
    from urllib.request import pathname2url  # here: scripts import this module, mlform calls this

    prefix = "sqlite://" if sys.platform == "win32" else "sqlite:///"
    return prefix + pathname2url(str((run_dir / MLFLOW_DB).absolute()))


def run_environment(run_id: str, run_dir: Path) -> dict[str, str]:
    """The environment variables a run's process gets, so the SDK and MLflow find its folder."""
    run_dir = run_dir.absolute()
    return {
        "MLFORM_RUN_ID": run_id,
        "MLFORM_RUN_DIR": str(run_dir),
        "MLFORM_OUTPUTS": str(run_dir / OUTPUTS),
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri(run_dir),
    }


def metric_key_field(key: str) -> str:
    """`key` as a metrics.csv field; raises if it cannot be one (why: fail at `log`)."""
    if not isinstance(key, str) or not key:
        raise TypeError(f"a metric key must be a non-empty string, not {key!r}")
    if any(ord(c) < 32 or c == "\x7f" for c in key):
        raise ValueError(f"a metric key cannot contain control characters: {key!r}")
    if _NEEDS_QUOTES.isdisjoint(key) and key.strip() == key:
        return key
    return '"' + key.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What run.json says about a child run or an offline run."""

    id: str
    name: str
    status: str
    started_ms: int
    ended_ms: int | None = None


def write_run_info(run_dir: Path, info: RunInfo) -> None:
    """Replace run.json atomically: a reader sees the old record or the new one."""
    temp = durable.partial(run_dir / RUN_INFO)
    temp.write_text(json.dumps(asdict(info)) + "\n", encoding="utf-8")
    os.replace(temp, run_dir / RUN_INFO)


def read_run_info(run_dir: Path) -> RunInfo | None:
    try:
        raw = json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return RunInfo(
        id=str(raw["id"]),
        name=str(raw["name"]),
        status=str(raw["status"]),
        started_ms=int(raw["started_ms"]),
        ended_ms=None if raw.get("ended_ms") is None else int(raw["ended_ms"]),
    )


def append_bytes(path: Path, data: bytes) -> None:
    """Append whole lines with one O_APPEND write each, so writers never interleave a line."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def append_mapping(path: Path, values: Mapping[str, str]) -> None:
    line = json.dumps(dict(values), ensure_ascii=False, separators=(",", ":")) + "\n"
    append_bytes(path, line.encode("utf-8"))


def read_mapping(path: Path) -> dict[str, str]:
    """Merge the JSON-lines file at `path`, later lines winning; a torn line is skipped."""
    merged: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return merged
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            merged.update((str(k), str(v)) for k, v in record.items())
    return merged
