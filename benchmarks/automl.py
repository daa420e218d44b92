"""Why an AutoML job evaluates its configurations one at a time: FLAML's search on one
machine, one configuration at a time on every core, against FLAML's side-by-side search
(`n_concurrent_trials=2`, which FLAML runs only on Ray Tune), on the same table with the
same budget.

Target: one at a time evaluates at least as many configurations per second of budget as
two at a time (a ratio ≥ 1), and finds a model at least as good. Each side is a whole
process running `AutoML.fit` on a generated 400-row classification table (3-fold
cross-validation, LogisticRegression, LightGBM and RandomForest, accuracy, a 25 s
budget); what it reports is the number of configurations FLAML's log recorded, the wall
clock of `fit` and the best accuracy. Ray runs with a throwaway home folder, so its token
and results stay out of the user's.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import sys
import textwrap
from pathlib import Path

from peers import WORK, WorkerFailed, at_least, timed, times, verdict

describe = "AutoML: FLAML one configuration at a time vs two at a time on Ray Tune"

BUDGET, QUICK_BUDGET = 25, 10  # seconds of search
ROUNDS, QUICK_ROUNDS = 1, 1
TARGET = 1.0  # configurations per second, one at a time ÷ two at a time, at least

SEARCH = """
import json, sys, time
import pandas as pd
from flaml.automl import AutoML

concurrent, budget = int(sys.argv[1]), float(sys.argv[2])
table = pd.read_csv("table.csv")
label = table.pop("label")
automl = AutoML()
log = f"flaml-{concurrent}.log"
started = time.monotonic()
automl.fit(
    table, label, task="classification", metric="accuracy",
    estimator_list=["lrl1", "lgbm", "rf"], eval_method="cv", n_splits=3,
    time_budget=budget, n_concurrent_trials=concurrent, log_file_name=log, log_type="all",
    verbose=0, mlflow_logging=False,
)
seconds = time.monotonic() - started
evaluated = sum(1 for line in open(log) if '"record_id"' in line)
print(json.dumps({"configurations": evaluated, "seconds": seconds, "best": 1 - automl.best_loss}))
"""


def workspace() -> Path:
    root = WORK / "automl"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = random.Random(0)
    rows = ["a,b,c,d,e,f,label"]
    for _ in range(400):
        x = [rng.gauss(0, 1) for _ in range(6)]
        noisy = x[0] + 0.8 * x[1] - 0.5 * x[2] * x[3] + rng.gauss(0, 0.7) > 0
        rows.append(",".join(f"{v:.4f}" for v in x) + f",{'yes' if noisy else 'no'}")
    (root / "table.csv").write_text("\n".join(rows) + "\n")
    (root / "search.py").write_text(textwrap.dedent(SEARCH).lstrip())
    (root / "home").mkdir()
    return root


def search(root: Path, concurrent: int, budget: float) -> dict[str, float]:
    env = {"HOME": str(root / "home"), "RAY_USAGE_STATS_ENABLED": "0"}
    done = timed(
        [sys.executable, "search.py", str(concurrent), str(budget)],
        cwd=root,
        env=env,
    )
    try:
        found: dict[str, float] = json.loads(done.out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise WorkerFailed(f"the search did not finish:\n{done.out[-2000:]}") from None
    return found


def run(*, quick: bool) -> bool:
    budget = QUICK_BUDGET if quick else BUDGET
    rounds = QUICK_ROUNDS if quick else ROUNDS
    root = workspace()
    ones: list[dict[str, float]] = []
    twos: list[dict[str, float]] = []
    for _ in range(rounds):
        ones.append(search(root, 1, budget))
        twos.append(search(root, 2, budget))

    def rate(found: list[dict[str, float]]) -> float:
        return statistics.median(f["configurations"] / f["seconds"] for f in found)

    ratio = rate(ones) / rate(twos)
    best_one = statistics.median(f["best"] for f in ones)
    best_two = statistics.median(f["best"] for f in twos)
    met = at_least(ratio, TARGET) and best_one >= best_two
    for name, found in (("one at a time", ones), ("two at a time, Ray Tune", twos)):
        last = found[-1]
        print(
            f"   {name:<26} {last['configurations']:>5.0f} configurations in "
            f"{last['seconds']:.1f} s, best accuracy {last['best']:.4f}"
        )
    said = f"target ≥ {TARGET:g}×  {verdict(met)}"
    print(f"   ratio {times(ratio)} (configurations a second)  {said}")
    print(json.dumps({"budget": budget, "one": ones, "two": twos, "ratio": ratio}))
    return met
