"""The job's own MLflow run, created before its script starts, as Azure ML does.

Azure ML creates an MLflow run for every job and hands its id to the script in
`MLFLOW_RUN_ID`, with `MLFLOW_EXPERIMENT_NAME` and `MLFLOW_EXPERIMENT_ID`
(https://learn.microsoft.com/azure/machine-learning/how-to-log-view-metrics): the
script's first `mlflow.start_run()`, autolog's run or a bare `mlflow.log_metric()`
resumes that run instead of opening a new one, so what the script logs is the job's, and
only `mlflow.start_run(nested=True)` opens a child. mlform does the same, and ingest
reads that run as the mlform run itself (`mlform.tracking.ingest`).

The run is created by the run's own interpreter, with the MLflow installed there, before
the script: MLflow then builds its tables at its own schema version, so mlform writes
nothing that depends on MLflow's schema, and mlform's process never imports mlflow. When
that interpreter has no mlflow, nothing is created (a look-up, not an import) and the
script runs as before; the runner also skips it for code that never names mlflow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlform.compute import groups
from mlform.tracking.protocol import MLFLOW_RUN

_CREATE = """
import importlib.util, json, sys
if importlib.util.find_spec("mlflow") is None:
    sys.exit(0)
from mlflow.tracking import MlflowClient
client = MlflowClient()
name, run_name = sys.argv[1:3]
found = client.get_experiment_by_name(name)
experiment_id = found.experiment_id if found else client.create_experiment(name)
run = client.create_run(experiment_id, run_name=run_name)
print(json.dumps({"run_id": run.info.run_id, "experiment_id": experiment_id}))
"""


@dataclass(frozen=True, slots=True)
class JobRun:
    run_id: str
    experiment_id: str
    experiment_name: str

    def environment(self) -> dict[str, str]:
        """What Azure ML sets for a job's script."""
        return {
            "MLFLOW_RUN_ID": self.run_id,
            "MLFLOW_EXPERIMENT_ID": self.experiment_id,
            "MLFLOW_EXPERIMENT_NAME": self.experiment_name,
        }


class JobRunFailed(Exception):
    """The run's mlflow could not create the run; the message says what it printed."""


def create(
    env: Mapping[str, str], cwd: Path, run_dir: Path, experiment: str, run_name: str
) -> JobRun | None:
    """Create the job's MLflow run in the store `env`'s MLFLOW_TRACKING_URI names, with the
    `python` on `env`'s PATH, from `cwd` (where MLflow puts artifacts by default); record
    it in `run_dir`. None when that Python has no mlflow."""
    python = shutil.which("python", path=env.get("PATH")) or "python"
    with groups.running(
        [python, "-c", _CREATE, experiment, run_name],
        what=f"MLflow run for {run_name}",
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as (process, group):
        out, err = process.communicate()
    done = subprocess.CompletedProcess(process.args, group.end(process), out, err)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise JobRunFailed(f"{python} could not create the job's MLflow run: {last}")
    if not done.stdout.strip():
        return None
    created = json.loads(done.stdout.strip().splitlines()[-1])
    job = JobRun(str(created["run_id"]), str(created["experiment_id"]), experiment)
    (run_dir / MLFLOW_RUN).write_text(done.stdout.strip().splitlines()[-1] + "\n")
    return job


def job_run_id(run_dir: Path) -> str | None:
    """The id of the MLflow run created for the job in `run_dir`, if one was."""
    try:
        return str(json.loads((run_dir / MLFLOW_RUN).read_text(encoding="utf-8"))["run_id"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
