"""Sweep jobs end to end through the CLI: trials as child runs, Bayesian search, early
termination, grid sampling, reuse by trial digest, and resuming a killed sweep."""

from __future__ import annotations

import json
import os
import re
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlform.state.store import Store
from tests.cli.test_runs import changes
from tests.conftest import Ran, mlform_process

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

# A known function of the parameters: best at x = 0.3 with kind b (1.1).
KNOWN = """
import argparse, os, pathlib
import mlform
p = argparse.ArgumentParser()
p.add_argument("--x", type=float); p.add_argument("--kind"); p.add_argument("--out")
a = p.parse_args()
score = 1 - 4 * (a.x - 0.3) ** 2 + (0.1 if a.kind == "b" else 0.0)
mlform.get_run().log("score", score)
out = pathlib.Path(a.out)
out.mkdir(parents=True, exist_ok=True)
(out / "model.txt").write_text(f"{a.x} {a.kind}")
"""

# A learning curve: `lr` of the way up by the end, one point every 0.25 s; writes its pid
# so that a test can tell its process is gone.
CURVE = """
import argparse, os, pathlib, time
import mlform
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
a = p.parse_args()
pids = pathlib.Path(os.environ["PIDS"])
pids.mkdir(exist_ok=True)
(pids / f"{a.lr}").write_text(str(os.getpid()))
run = mlform.get_run()
for i in range(1, 9):
    run.log("accuracy", a.lr * i / 8)
    run.flush()
    time.sleep(0.25)
"""


def sweep_file(body: str) -> str:
    """A sweep job's file as Azure ML's documentation writes them."""
    return (
        "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n"
        "type: sweep\n" + textwrap.dedent(body).lstrip("\n")
    )


def trials(root: Path, sweep: str = "runconfig/sweep") -> list[tuple[str, str, str, str | None]]:
    """Every trial run on record: (its digest, status, error, reused_from)."""
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        rows = store.query(
            "select digest, status, coalesce(error, ''), reused_from from runs "
            "where starts_with(runconfig, ?) order by created_at",
            [f"{sweep}/trial"],
        )
    return [(str(a), str(b), str(c), d) for a, b, c, d in rows]


def applied_trials(root: Path, cli: Cli, param: str) -> tuple[dict[str, Any], dict[Any, Any]]:
    """Apply, then the sweep's summary and its trials by the value of `param`."""
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.err
    found: dict[str, Any] = summary(root, cli)
    return found, {t["params"][param]: t for t in found["trials"]}


def summary(root: Path, cli: Cli) -> dict[str, object]:
    return summary_of(root, cli, "sweep")


def summary_of(root: Path, cli: Cli, name: str) -> dict[str, object]:
    """The trials of the latest run of sweep `name`, as `runs show --json` gives them."""
    shown = cli("runs", "show", name, "--json", cwd=root)
    assert shown.code == 0, shown.err
    found = json.loads(shown.out)["sweep"]
    assert isinstance(found, dict)
    return found


def test_a_bayesian_sweep_finds_the_optimum_and_registers_the_best_model(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: tuning\n",
            "src/train.py": KNOWN,
            "runconfigs/sweep.yml": sweep_file(
                """
                trial:
                  code: ../src
                  command: >-
                    python train.py --x ${{search_space.x}} --kind ${{search_space.kind}}
                    --out ${{outputs.model}}
                outputs:
                  model: {type: uri_folder}
                sampling_algorithm: bayesian
                search_space:
                  x: {type: uniform, min_value: 0.0, max_value: 1.0}
                  kind: {type: choice, values: [a, b]}
                objective: {goal: maximize, primary_metric: score}
                limits: {max_total_trials: 12, max_concurrent_trials: 2}
                register_model:
                  name: tuned
                  path: model
                  when: score >= 1.0
                """
            ),
        }
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.err
    assert "12 trials (12 completed)" in applied.out
    found = summary(root, cli)
    best = next(t for t in found["trials"] if t["run_id"] == found["best"])  # type: ignore[attr-defined]
    assert best["params"]["kind"] == "b"
    assert abs(best["params"]["x"] - 0.3) < 0.1 and best["value"] >= 1.06
    # the best trial's model is the one registered, through the gate
    model = json.loads(cli("models", "show", "tuned", "--json", cwd=root).out)
    assert model["version"] == "1" and model["run_id"] == best["run_id"]
    written = (Path(best["run_dir"]) / "outputs" / "model" / "model.txt").read_text()
    assert written == f"{best['params']['x']} b"
    # two at a time, never more: when any trial started, at most one other was running
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        spans = store.query(
            "select epoch(started_at), epoch(ended_at) from runs where starts_with(runconfig, ?)",
            ["runconfig/sweep/trial"],
        )
    assert len(spans) == 12
    for start, _ in spans:
        assert sum(1 for s, e in spans if s <= start < e) <= 2
    assert any(s < start < e for start, _ in spans for s, e in spans)  # some side by side
    ranked = cli("runs", "show", "sweep", cwd=root).out
    assert re.search(r"^\s+best\s+\d+\s+1\.\d+\s+x=\S+ kind=b\s+completed", ranked, re.M), ranked


def test_bandit_stops_the_trials_behind_and_never_the_best(
    cli: Cli, make_workspace: Make, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    root = make_workspace(
        {
            "workspace.yml": "name: stopping\n",
            "src/train.py": CURVE,
            "runconfigs/sweep.yml": sweep_file(
                f"""
trial:
  code: ../src
  command: python train.py --lr ${{{{search_space.lr}}}}
  environment_variables: {{PIDS: {pids}}}
sampling_algorithm: grid
search_space:
  lr: {{type: choice, values: [1.0, 0.9, 0.2, 0.1]}}
objective: {{goal: maximize, primary_metric: accuracy}}
limits: {{max_concurrent_trials: 2}}
early_termination:
  type: bandit
  slack_factor: 0.2
  evaluation_interval: 1
  delay_evaluation: 2
"""
            ),
        }
    )
    found, by_lr = applied_trials(root, cli, "lr")
    assert by_lr[1.0]["status"] == "completed" and found["best"] == by_lr[1.0]["run_id"]
    assert by_lr[0.9]["status"] == "completed"  # within the slack of the best: not stopped
    for behind in (0.2, 0.1):
        trial = by_lr[behind]
        assert trial["status"] == "terminated"
        assert trial["intervals"] < 8  # stopped before its end
        pid = int((pids / str(behind)).read_text())
        assert not _alive(pid), f"trial lr={behind} still runs"
    runs = {r[1]: r[2] for r in trials(root) if r[1] == "canceled"}
    assert runs and all(
        e.startswith(
            "early termination: bandit (slack_factor 0.2, evaluation_interval 1, "
            "delay_evaluation 2) at interval "
        )
        for e in runs.values()
    )
    listed = cli("runs", "show", "sweep", cwd=root).out
    assert re.search(r"\(0\.\d+ at \d\)\s+lr=0\.1\s+terminated", listed), listed


def test_a_grid_runs_each_combination_once_and_unchanged_sweeps_run_nothing(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: grid\n",
            "src/train.py": """
                import argparse, mlform
                p = argparse.ArgumentParser()
                p.add_argument("--a"); p.add_argument("--b", type=int)
                a = p.parse_args()
                mlform.get_run().log("score", a.b + (0.5 if a.a == "y" else 0))
                """,
            "runconfigs/sweep.yml": sweep_file(
                """
trial:
  code: ../src
  command: python train.py --a ${{search_space.a}} --b ${{search_space.b}}
sampling_algorithm: grid
search_space:
  a: {type: choice, values: [x, y]}
  b: {type: choice, values: [1, 2, 3]}
objective: {goal: minimize, primary_metric: score}
limits: {max_total_trials: 20, max_concurrent_trials: 3}
"""
            ),
        }
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.err
    found = summary(root, cli)
    combinations = sorted((t["params"]["a"], t["params"]["b"]) for t in found["trials"])  # type: ignore[attr-defined]
    assert combinations == [(a, b) for a in "xy" for b in (1, 2, 3)]
    best = next(t for t in found["trials"] if t["run_id"] == found["best"])  # type: ignore[attr-defined]
    assert best["params"] == {"a": "x", "b": 1}
    again = cli("plan", cwd=root)
    assert again.code == 0 and "No changes" in again.out, again.out
    # --rerun reruns the sweep, and every trial of it is found done
    rerun = cli("apply", "--yes", "--rerun", "sweep", cwd=root)
    assert "6 trials (6 reused)" in rerun.out, rerun.out
    assert sum(1 for t in trials(root) if t[3] is None) == 6


def test_more_trials_run_only_the_new_ones_and_a_killed_sweep_resumes(
    cli: Cli, make_workspace: Make
) -> None:
    files = {
        "workspace.yml": "name: resumed\n",
        "src/train.py": """
            import argparse, time, mlform
            p = argparse.ArgumentParser()
            p.add_argument("--lr", type=float)
            a = p.parse_args()
            time.sleep(0.5)
            mlform.get_run().log("loss", (a.lr - 0.5) ** 2)
            """,
        "runconfigs/sweep.yml": sweep_file(
            """
trial:
  code: ../src
  command: python train.py --lr ${{search_space.lr}}
sampling_algorithm: random          # its seed derived from the sweep's declaration
search_space:
  lr: {type: loguniform, min_value: -6, max_value: 0}
objective: {goal: minimize, primary_metric: loss}
limits: {max_total_trials: 8, max_concurrent_trials: 1}
"""
        ),
    }
    root = make_workspace(files)
    sweep = root / "runconfigs" / "sweep.yml"
    # killed once three trials have completed
    apply = mlform_process("apply", "--yes", cwd=root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and apply.poll() is None:
        if sum(1 for t in _completed(root)) >= 3:
            break
        time.sleep(0.1)
    apply.kill()
    apply.communicate()
    done = _completed(root)
    assert 3 <= len(done) < 8, done
    resumed = cli("apply", "--yes", cwd=root)
    assert resumed.code == 0, resumed.err
    assert f"({8 - len(done)} completed, {len(done)} reused)" in resumed.out, resumed.out
    # no trial completed twice, and eight in all
    completed = [t[0] for t in trials(root) if t[1] == "completed" and t[3] is None]
    assert len(completed) == len(set(completed)) == 8
    # raising the limit plans, and runs, only the new trials (a description edited
    # meanwhile changes nothing the trials are picked by)
    raised = sweep.read_text().replace("max_total_trials: 8", "max_total_trials: 11")
    sweep.write_text(raised + "description: more trials\n")
    planned = cli("plan", cwd=root)
    assert changes(planned.out) == ["> runconfig/sweep (3 more trials: max_total_trials 8 → 11)"], (
        planned.out
    )
    more = cli("apply", "--yes", cwd=root)
    assert "11 trials (3 completed, 8 reused)" in more.out, more.out
    # changing the training code runs every trial again
    script = root / "src" / "train.py"
    script.write_text(script.read_text() + "# the same computation, other code\n")
    changed = cli("apply", "--yes", cwd=root)
    assert "11 trials (11 completed)" in changed.out, changed.out


def _completed(root: Path) -> list[str]:
    try:
        return [t[0] for t in trials(root) if t[1] == "completed" and t[3] is None]
    except Exception:  # the state is being written: look again
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone: only its entry is left
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def test_the_example_sweep_tunes_the_classifier_and_registers_the_best(
    cli: Cli, example_with_sweep: Path
) -> None:
    root = example_with_sweep
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.err
    found = summary_of(root, cli, "tune")
    statuses = [t["status"] for t in found["trials"]]  # type: ignore[attr-defined]
    assert len(statuses) == 8 and set(statuses) <= {"completed", "terminated"}
    best = next(t for t in found["trials"] if t["run_id"] == found["best"])  # type: ignore[attr-defined]
    assert best["status"] == "completed" and best["value"] >= 0.9
    model = json.loads(cli("models", "show", "iris-tuned", "--json", cwd=root).out)
    assert model["run_id"] == best["run_id"]
    # the same trials again, found done: nothing to run
    assert "No changes" in cli("plan", cwd=root).out


def test_an_mlflow_logging_trial_is_stopped_as_its_metric_comes_in(
    cli: Cli, make_workspace: Make
) -> None:
    """Trials that log with MLflow, as Azure ML's sweep examples do: the policy reads
    each value as MLflow writes it, and stops the trial behind while it runs."""
    root = make_workspace(
        {
            "workspace.yml": "name: mlflow-sweep\n",
            "src/train.py": """
                import argparse, time
                import mlflow
                p = argparse.ArgumentParser()
                p.add_argument("--lr", type=float)
                a = p.parse_args()
                for i in range(1, 9):
                    mlflow.log_metric("accuracy", a.lr * i / 8, step=i)
                    time.sleep(0.3)
                """,
            "runconfigs/sweep.yml": sweep_file(
                """
                trial:
                  code: ../src
                  command: python train.py --lr ${{search_space.lr}}
                sampling_algorithm: grid
                search_space:
                  lr: {type: choice, values: [1.0, 0.1]}
                objective: {goal: maximize, primary_metric: accuracy}
                early_termination:
                  type: bandit
                  slack_amount: 0.2
                  delay_evaluation: 2
                """
            ),
        }
    )
    _, by_lr = applied_trials(root, cli, "lr")
    assert by_lr[1.0]["status"] == "completed" and by_lr[1.0]["value"] == 1.0
    assert by_lr[0.1]["status"] == "terminated" and by_lr[0.1]["intervals"] < 8


def test_a_failed_trial_does_not_stop_the_sweep_and_no_metric_fails_it(
    cli: Cli, make_workspace: Make
) -> None:
    files = {
        "workspace.yml": "name: failing\n",
        "src/train.py": """
            import sys, mlform
            n = int(sys.argv[1])
            if n == 2:
                sys.exit("diverged")
            mlform.get_run().log("loss", abs(n - 3))
            """,
        "runconfigs/sweep.yml": sweep_file(
            """
            trial:
              code: ../src
              command: python train.py ${{search_space.n}}
            sampling_algorithm: grid
            search_space:
              n: {type: choice, values: [1, 2, 3]}
            objective: {goal: minimize, primary_metric: loss}
            limits: {max_concurrent_trials: 1}
            """
        ),
    }
    root = make_workspace(files)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.err
    assert "3 trials (2 completed, 1 failed); best trial" in applied.out, applied.out
    found = summary(root, cli)
    by_n = {t["params"]["n"]: t for t in found["trials"]}  # type: ignore[attr-defined]
    assert by_n[2]["status"] == "failed" and by_n[3]["run_id"] == found["best"]
    # a metric nobody logs: the sweep fails, saying which and why
    sweep = root / "runconfigs" / "sweep.yml"
    sweep.write_text(sweep.read_text().replace("primary_metric: loss", "primary_metric: acc"))
    failed = cli("apply", "--yes", cwd=root)
    assert failed.code == 1
    said = failed.out + failed.err
    assert "no trial logged its primary metric acc (2 reused, 1 failed)" in said, said
    assert "Each trial must log acc" in said and "Traceback" not in said
