"""A sweep of 100 trials, 2 at a time: `mlform apply` against a plain Optuna study.

Target (each a ratio of wall clocks, whole processes, medians of rounds taking turns):
- 100 trials of an objective that takes 0.2 s, 2 at a time, sampled at random from one
  seed: `mlform apply --yes` on a sweep job (`type: sweep`, runconfigs/sweep.yml) against
  a Python script that runs an Optuna study (`study.optimize(…, n_jobs=2)`) whose
  objective calls the same script as a subprocess and reads the value it prints: mlform
  ≤ 1.3× its time. What mlform adds is the cost of recording each trial as a run (its
  folder, code snapshot, logs and metrics kept, the state written), of reuse by digest,
  and of the plan.

Cold on both sides: each round starts from nothing recorded (mlform's `.mlform/` and the
study's are removed first); the objective's code and Python's compiled modules are in
place. The objective logs its value with mlform's SDK on both sides (outside mlform the
SDK writes an offline run, as a script run by hand does) and prints it for the study.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import textwrap
from pathlib import Path

from peers import BYTECODE, WORK, WorkerFailed, at_most, duration, timed, times, verdict

describe = "100 trials of a 0.2 s objective, 2 at a time: mlform's sweep vs a plain Optuna loop"

TRIALS, QUICK_TRIALS = 100, 20
ROUNDS, QUICK_ROUNDS = 3, 1
TARGET = 1.3  # mlform ÷ Optuna, at most
MLFORM = [sys.executable, "-m", "mlform.cli.main"]

OBJECTIVE = """
import argparse, time
import mlform

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
args = parser.parse_args()
time.sleep(0.2)  # the training
score = 1 - (args.x - 0.3) ** 2
mlform.get_run().log("score", score)
print(score)
"""

SWEEP = """
type: sweep
trial:
  code: ../src
  command: python objective.py --x ${{{{search_space.x}}}}
sampling_algorithm: {{type: random, seed: 1}}
search_space:
  x: {{type: uniform, min_value: 0, max_value: 1}}
objective: {{goal: maximize, primary_metric: score}}
limits: {{max_total_trials: {trials}, max_concurrent_trials: 2}}
"""

STUDY = """
import subprocess, sys
import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
trials = int(sys.argv[1])


def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    done = subprocess.run(
        [sys.executable, "objective.py", "--x", repr(x)],
        cwd="src", capture_output=True, text=True, check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
study.optimize(objective, n_trials=trials, n_jobs=2)
print(study.best_value)
"""


def workspace(trials: int) -> Path:
    root = WORK / "sweep"
    if root.exists():
        shutil.rmtree(root)
    (root / "src").mkdir(parents=True)
    (root / "runconfigs").mkdir()
    (root / "workspace.yml").write_text("name: bench-sweep\n")
    (root / "src" / "objective.py").write_text(textwrap.dedent(OBJECTIVE).lstrip())
    (root / "runconfigs" / "sweep.yml").write_text(SWEEP.format(trials=trials).lstrip())
    (root / "study.py").write_text(textwrap.dedent(STUDY).lstrip())
    return root


def _fresh(root: Path) -> None:
    for leftover in (root / ".mlform", root / "src" / ".mlform-offline"):
        shutil.rmtree(leftover, ignore_errors=True)


def ours(root: Path) -> float:
    _fresh(root)
    done = timed([*MLFORM, "apply", "--yes"], cwd=root, env={**BYTECODE, "NO_COLOR": "1"})
    if "completed:" not in done.out:
        raise WorkerFailed(f"the sweep did not complete:\n{done.out[-2000:]}")
    return done.seconds


def theirs(root: Path) -> float:
    _fresh(root)
    return timed([sys.executable, "study.py", str(_trials(root))], cwd=root, env=BYTECODE).seconds


def _trials(root: Path) -> int:
    text = (root / "runconfigs" / "sweep.yml").read_text()
    return int(text.split("max_total_trials: ")[1].split(",")[0])


def run(*, quick: bool) -> bool:
    trials = QUICK_TRIALS if quick else TRIALS
    rounds = QUICK_ROUNDS if quick else ROUNDS
    root = workspace(trials)
    ours(root), theirs(root)  # untimed: compiled modules in place on both sides
    mine: list[float] = []
    peer: list[float] = []
    for _ in range(rounds):
        mine.append(ours(root))
        peer.append(theirs(root))
    ratio = statistics.median(mine) / statistics.median(peer)
    met = at_most(ratio, TARGET)
    print(f"   {trials} trials of 0.2 s, 2 at a time, cold, {rounds} rounds (medians)")
    print(f"   mlform apply (sweep job)         {duration(statistics.median(mine)):>10}")
    print(f"   Optuna study, subprocess trials  {duration(statistics.median(peer)):>10}")
    print(f"   ratio {times(ratio, up=True)}  target ≤ {TARGET:g}×  {verdict(met)}")
    print(json.dumps({"trials": trials, "mlform": mine, "optuna": peer, "ratio": ratio}))
    return met
