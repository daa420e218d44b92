"""Runconfigs become recorded runs: retraining on commits, failures, timeouts, Ctrl-C,
MLflow scripts, child runs and the queries over them — through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.apply.test_interrupted import wait_for_line
from tests.conftest import Ran, mlform_process

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def changes(out: str) -> list[str]:
    """The plan's change lines, with the column padding collapsed."""
    return [
        " ".join(line.split())
        for line in out.splitlines()
        if line.startswith(("  >", "  +", "  ~", "  -"))
    ]


def test_commit_triggered_retraining(cli: Cli, example: Path) -> None:
    git(example, "init", "-q", "-b", "main")
    git(example, "add", "-A")
    git(example, "commit", "-qm", "one")
    first = cli("apply", "--yes", cwd=example)
    assert first.code == 0, first.out + first.err
    assert "> runconfig/train ran: run train_" in first.out
    assert "accuracy " in first.out  # the script's own output, shown live

    (example / "README.md").write_text("Only the README changes here.\n")
    git(example, "commit", "-qam", "two")
    assert cli("plan", "--detailed-exitcode", cwd=example).code == 0

    train = example / "src" / "train.py"
    train.write_text(train.read_text().replace("max_iter", "max_iter", 1) + "\n# tuned\n")
    git(example, "commit", "-qam", "three")
    third = git(example, "rev-parse", "HEAD")
    plan = cli("plan", "--detailed-exitcode", cwd=example)
    assert plan.code == 2
    assert changes(plan.out) == ["> runconfig/train (code: src/train.py modified)"]
    assert cli("apply", "--yes", cwd=example).code == 0

    shown = cli("runs", "show", "train", cwd=example).out
    assert f"commit:       {third}\n" in shown
    assert "branch:       main" in shown
    assert "training_data = iris:1" in shown
    assert "accuracy = " in shown
    listed = cli("runs", "list", "--experiment", "iris-classifier", cwd=example).out
    assert len(listed.splitlines()) == 3  # the header and two runs
    assert cli("plan", "--detailed-exitcode", cwd=example).code == 0


def workspace(make: Make, runconfigs: Mapping[str, str], extra: Mapping[str, str] = {}) -> Path:
    files = {"workspace.yml": "name: runs\n", "src/.keep": ""}
    files.update({f"runconfigs/{n}.yml": textwrap.dedent(t) for n, t in runconfigs.items()})
    files.update(extra)
    return make(files)


def test_failing_script_is_recorded_and_stops_its_dependents(
    cli: Cli, make_workspace: Make
) -> None:
    root = workspace(
        make_workspace,
        {
            "fail": """
            command: echo preparing; echo 'something broke' >&2; exit 3
            code: ../src
        """,
            "after": """
            command: echo never
            depends_on: [runconfig/fail]
        """,
        },
    )
    ran = cli("apply", "--yes", cwd=root)
    assert ran.code == 1
    assert "> runconfig/fail failed: run fail_" in ran.out
    assert (
        "failed (exit code 3)\nthe last lines of its log:\n  | preparing\n  | something broke"
        in ran.out
    )
    assert "> runconfig/after skipped: runconfig/fail did not succeed" in ran.out
    shown = cli("runs", "show", "fail", cwd=root).out
    assert "(failed)" in shown.splitlines()[0]
    assert "exit code:    3" in shown
    assert "    | something broke" in shown
    assert cli("runs", "list", "--runconfig", "after", cwd=root).out.startswith("No runs")
    run_id = cli("runs", "list", "--runconfig", "fail", cwd=root).out.splitlines()[1].split()[0]
    plan = cli("plan", cwd=root)
    # the reason is the failure's summary, whole, on one line: its log is in `runs show`
    assert changes(plan.out) == [
        f"> runconfig/fail (last apply failed: run {run_id} failed (exit code 3))",
        "> runconfig/after (no run yet)",
    ]


def test_reverting_a_failed_change_to_completed_content_plans_nothing(
    cli: Cli, make_workspace: Make
) -> None:
    root = workspace(
        make_workspace,
        {"train": "command: python train.py\ncode: ../src\n"},
        {"src/train.py": "print('trained')\n"},
    )
    script = root / "src" / "train.py"
    assert cli("apply", "--yes", cwd=root).code == 0
    script.write_text("raise SystemExit(2)\n")
    assert cli("apply", "--yes", cwd=root).code == 1
    script.write_text("print('trained')\n")
    plan = cli("plan", "--detailed-exitcode", cwd=root)
    assert (plan.code, changes(plan.out)) == (0, []), plan.out + plan.err
    assert cli("runs", "list", "--runconfig", "train", cwd=root).out.count("train_") == 2


def test_reverting_a_failed_change_to_an_earlier_completed_content_plans_nothing(
    cli: Cli, make_workspace: Make
) -> None:
    root = workspace(
        make_workspace,
        {"train": "command: python train.py\ncode: ../src\n"},
        {"src/train.py": "print('a')\n"},
    )
    script = root / "src" / "train.py"
    assert cli("apply", "--yes", cwd=root).code == 0
    script.write_text("print('b')\n")
    assert cli("apply", "--yes", cwd=root).code == 0
    script.write_text("raise SystemExit(2)\n")
    assert cli("apply", "--yes", cwd=root).code == 1
    script.write_text("print('a')\n")
    plan = cli("plan", "--detailed-exitcode", cwd=root)
    assert (plan.code, changes(plan.out)) == (0, []), plan.out + plan.err
    assert cli("apply", "--yes", cwd=root).code == 0
    assert cli("runs", "list", "--runconfig", "train", cwd=root).out.count("train_") == 3


def test_mlforms_own_folder_does_not_make_the_run_dirty(cli: Cli, make_workspace: Make) -> None:
    root = workspace(make_workspace, {"hello": "command: echo hello\ncode: ../src\n"})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")  # no .gitignore: .mlform/ is not ignored
    assert cli("apply", "--yes", cwd=root).code == 0
    head = git(root, "rev-parse", "HEAD")
    assert f"  commit:       {head}\n" in cli("runs", "show", "hello", cwd=root).out
    assert "?? .mlform/" in git(root, "status", "--porcelain")


def test_timeout_marks_the_run_timed_out(cli: Cli, make_workspace: Make, tmp_path: Path) -> None:
    # Killed by its limit, not run to completion: its child (which would outlive the limit by
    # ten minutes) is dead and the line after it never ran, whatever preparing the run cost.
    pidfile, finished = tmp_path / "child.pid", tmp_path / "finished"
    root = workspace(
        make_workspace,
        {
            "slow": f"""
            command: sleep 600 & echo $! > {pidfile}; echo starting; wait $!; touch {finished}
            limits:
              timeout: 1
        """,
        },
    )
    ran = cli("apply", "--yes", cwd=root)
    assert not _alive(int(pidfile.read_text())), "the run's child process survived its limit"
    assert not finished.exists()
    assert ran.code == 1
    assert "timed out\nthe last lines of its log:\n  | starting" in ran.out
    assert cli("runs", "list", "--status", "timed_out", cwd=root).out.count("slow_") == 1


def test_ctrl_c_cancels_the_run_and_kills_its_process_tree(
    cli: Cli, make_workspace: Make, tmp_path: Path
) -> None:
    pidfile = tmp_path / "child.pid"
    root = workspace(
        make_workspace,
        {
            "long": f"""
            command: sleep 60 & echo $! > {pidfile}; echo waiting; wait
        """,
        },
    )
    proc = mlform_process("apply", "--yes", cwd=root, start_new_session=True)
    wait_for_line(proc, "runconfig/long: waiting\n")
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches mlform's group only
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not _alive(child), "the run's own child process survived"
    listed = cli("runs", "list", "--status", "canceled", cwd=root)
    assert listed.out.count("long_") == 1
    assert "> runconfig/long  (last apply failed: run long_" in cli("plan", cwd=root).out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


MLFLOW_SCRIPT = """
import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

mlflow.autolog(log_models=False)
x, y = load_iris(return_X_y=True)
with mlflow.start_run():
    LogisticRegression(C=0.5, max_iter=300).fit(x, y)
    mlflow.log_metric("custom", 42.0)
"""


def test_mlflow_autolog_script_runs_unchanged(cli: Cli, make_workspace: Make) -> None:
    root = workspace(
        make_workspace,
        {"autolog": "command: python fit.py\ncode: ../src\nexperiment_name: mlflow-compat\n"},
        {"src/fit.py": MLFLOW_SCRIPT},
    )
    ran = cli("apply", "--yes", cwd=root)
    assert ran.code == 0, ran.out + ran.err
    points = json.loads(cli("runs", "metrics", "autolog", "--json", cwd=root).out)["metrics"]
    keys = {p["key"] for p in points}
    assert {"custom", "training_accuracy_score"} <= keys
    shown = cli("runs", "show", "autolog", cwd=root).out
    assert "    C = 0.5" in shown and "    max_iter = 300" in shown
    custom = cli("runs", "metrics", "autolog", "--key", "custom", "--csv", cwd=root).out
    assert custom.splitlines()[0] == "key,step,timestamp,value"
    assert custom.splitlines()[1].startswith("custom,0,") and custom.endswith(",42.0\n")


# A job script as Azure ML's MLflow examples write one: autolog, then the script's own
# params and metrics with no `start_run`, a nested run it asks for, and the model saved
# into ./outputs, which Azure ML keeps with the job.
AZURE_MLFLOW_SCRIPT = """
import argparse
import os
import pickle

import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float)
args = parser.parse_args()

mlflow.autolog(log_models=False)
x, y = load_iris(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
mlflow.log_param("test_size", 0.3)
model = LogisticRegression(C=args.C, max_iter=300).fit(x_train, y_train)
mlflow.log_metric("accuracy", model.score(x_test, y_test))
with mlflow.start_run(run_name="holdout", nested=True):
    mlflow.log_metric("holdout_rows", len(x_test))

os.makedirs("outputs", exist_ok=True)
with open("outputs/model.pkl", "wb") as file:
    pickle.dump(model, file)
os.makedirs("logs", exist_ok=True)
with open("logs/training.txt", "w") as file:
    file.write("trained\\n")
"""

AZURE_MLFLOW_JOB = """
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
command: python train.py --C ${{inputs.C}}
code: ../src
inputs:
  C: 0.5
experiment_name: iris-mlflow
register_model:
  name: iris-mlflow
  path: model.pkl
  when: accuracy >= 0.8
"""


def test_an_azure_mlflow_job_logs_into_its_own_run(
    cli: Cli, make_workspace: Make, tmp_path: Path
) -> None:
    root = workspace(
        make_workspace,
        {"train": AZURE_MLFLOW_JOB},
        {"src/train.py": AZURE_MLFLOW_SCRIPT},
    )
    ran = cli("apply", "--yes", cwd=root)
    assert ran.code == 0, ran.out + ran.err
    # the gate read the accuracy the script logged with MLflow: it is the job's own metric
    assert "; registered iris-mlflow:1 (accuracy 0.9778 >= 0.8) [" in ran.out, ran.out
    shown = cli("runs", "show", "train", cwd=root).out
    assert "    C = 0.5" in shown and "    test_size = 0.3" in shown
    assert "    accuracy = " in shown and "    training_accuracy_score = " in shown
    assert "holdout_rows" not in shown.partition("  child runs:")[0]
    assert "    logs/training.txt  (8 B)" in shown and "    outputs/model.pkl  (" in shown
    kids = shown.partition("  child runs:\n")[2].splitlines()
    assert len(kids) == 1 and kids[0].split()[1:] == ["holdout", "completed", "holdout_rows=45"]
    assert cli("runs", "download", "train", str(tmp_path / "got"), cwd=root).code == 0
    assert (tmp_path / "got" / "logs" / "training.txt").read_text() == "trained\n"
    assert (tmp_path / "got" / "outputs" / "model.pkl").stat().st_size > 0
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0


FIT_FIRST_SCRIPT = """
import pickle

import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

mlflow.autolog(log_models=False)
x, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=300).fit(x, y)
mlflow.log_metric("custom", 42.0)
with open("outputs/model.pkl", "wb") as file:
    pickle.dump(model, file)
"""


def test_autolog_before_any_run_logs_into_the_job_run(cli: Cli, make_workspace: Make) -> None:
    root = workspace(
        make_workspace,
        {
            "fit": """
            command: python fit.py
            code: ../src
            register_model: {name: fitted, path: model.pkl, when: training_accuracy_score >= 0.9}
        """
        },
        {"src/fit.py": FIT_FIRST_SCRIPT},
    )
    ran = cli("apply", "--yes", cwd=root)
    assert ran.code == 0, ran.out + ran.err
    # autolog's run is the job's (MLFLOW_RUN_ID), so its metrics can gate the model
    assert "; registered fitted:1 (training_accuracy_score 0.9733 >= 0.9) [" in ran.out
    shown = cli("runs", "show", "fit", cwd=root).out
    assert "    training_accuracy_score = 0.973333" in shown
    # MLflow ends autolog's run after fit() and forgets MLFLOW_RUN_ID, so a later
    # log_metric opens a run of its own, as it does on Azure ML: kept as a child run
    kids = shown.partition("  child runs:\n")[2].splitlines()
    assert len(kids) == 1 and kids[0].split()[2:] == ["completed", "custom=42"]


SDK_SCRIPT = """
import sys
import mlform

run = mlform.get_run()
run.log_params({"folds": 2, "lr": sys.argv[1]})
run.set_tags({"kind": "cv"})
for fold in range(2):
    with run.child(f"fold-{fold}") as child:
        for step in range(3):
            child.log("loss", 1.0 / (step + 1 + fold))
run.log("score", 0.5 + float(sys.argv[1]))
"""


def test_sdk_child_runs_compare_and_triggers(cli: Cli, make_workspace: Make) -> None:
    root = workspace(
        make_workspace,
        {
            "cv": """
                command: python cv.py ${{inputs.lr}}
                code: ../src
                inputs:
                  lr: 0.1
                trigger: always
            """,
            "once": """
                command: python cv.py 0.3
                code: ../src
                trigger: manual
            """,
        },
        {"src/cv.py": SDK_SCRIPT},
    )
    plan = cli("plan", cwd=root)
    assert changes(plan.out)[1:] == ["> runconfig/cv (no run yet)"]
    assert (
        "note: runconfig/once would run (no run yet) but its trigger is manual: run it with "
        "`mlform apply --rerun once`" in plan.out
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    assert changes(cli("plan", cwd=root).out) == ["> runconfig/cv (trigger: always)"]
    # One change at a time, so `once` is created after the second run of `cv`: two runs
    # that start together have no order but the one their threads happen to take.
    ran = cli("apply", "--yes", "--parallelism", "1", "--rerun", "once", cwd=root)
    assert ran.code == 0, ran.out
    assert "> runconfig/once ran" in ran.out

    shown = cli("runs", "show", "cv", cwd=root).out
    assert "    folds = 2" in shown and "    kind = cv" in shown
    assert "  child runs:" in shown
    assert shown.count("completed  loss=") == 2
    first, second = (
        line.split()[0]
        for line in cli("runs", "list", "--tag", "kind=cv", cwd=root).out.splitlines()[1:3]
    )
    compared = cli("runs", "compare", first, second, cwd=root).out.splitlines()
    assert compared[0].split() == [first, second]
    assert [line.split() for line in compared if line.startswith("param lr")] == [
        ["param", "lr", "0.3", "0.1"]
    ]
    experiments = cli("experiments", "list", cwd=root).out
    assert "cv    " in experiments and "once  " in experiments
    missing = cli("apply", "--yes", "--rerun", "nope", cwd=root)
    assert missing.code == 1
    assert "--rerun nope: no runconfig named 'nope' (runconfigs: cv, once)" in missing.err


def test_snapshot_explain_and_download(cli: Cli, make_workspace: Make, tmp_path: Path) -> None:
    root = workspace(
        make_workspace,
        {"snap": "command: cat data.txt > $MLFORM_OUTPUTS/copy.txt\ncode: ../src\n"},
        {
            "src/data.txt": "hello\n",
            "src/.gitignore": "*.log\n",
            "src/debug.log": "noise\n",
        },
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    explained = cli("runs", "snapshot", "snap", "--explain", cwd=root).out
    assert "debug.log" in explained and "*.log" in explained and ".gitignore:1" in explained
    listed = cli("runs", "snapshot", "snap", cwd=root).out
    assert "  data.txt  6 B" in listed and "debug.log" not in listed
    dest = tmp_path / "restored"
    ran = cli("runs", "download", "snap", str(dest), cwd=root)
    assert ran.code == 0, ran.err
    assert (dest / "snapshot" / "data.txt").read_text() == "hello\n"
    assert (dest / "outputs" / "copy.txt").read_text() == "hello\n"
    assert not (dest / "snapshot" / "debug.log").exists()


def test_runs_logs_and_python_api(cli: Cli, make_workspace: Make) -> None:
    root = workspace(make_workspace, {"hello": "command: echo hello from the run\n"})
    assert cli("apply", "--yes", cwd=root).code == 0
    assert cli("runs", "logs", "hello", cwd=root).out == "hello from the run\n"
    assert cli("runs", "logs", "hello", "--follow", cwd=root).out == "hello from the run\n"
    from mlform import Workspace

    runs = Workspace(root).runs(status="completed")
    assert [r.name for r in runs] == ["hello"]
    assert runs[0].exit_code == 0


PROGRESS_SCRIPT = """
import time
import mlform

run = mlform.get_run()
for step in range(5):
    run.log("loss", 1.0 / (step + 1))
    run.flush()
    time.sleep(0.5)
print("done training")
"""


def test_apply_shows_live_progress_on_a_terminal(cli: Cli, make_workspace: Make) -> None:
    from tests.cli.test_confirm import apply_on_a_terminal

    root = workspace(
        make_workspace,
        {"live": "command: python fit.py\ncode: ../src\n"},
        {"src/fit.py": PROGRESS_SCRIPT},
    )
    code, screen = apply_on_a_terminal(root, "yes")
    assert code == 0, screen
    assert "\r\x1b[K" in screen  # the status line is redrawn in place
    assert "runconfig/live: running " in screen
    assert "loss=" in screen
    assert "    runconfig/live: done training" in screen
    plain = cli("apply", "--yes", "--rerun", "live", cwd=root)  # not a terminal: plain lines
    assert "\x1b[K" not in plain.out
    assert "    runconfig/live: metrics: loss=" in plain.out


def test_run_left_by_a_killed_apply_is_stopped_and_recorded(
    cli: Cli, make_workspace: Make, tmp_path: Path
) -> None:
    pidfile, marker = tmp_path / "child.pid", tmp_path / "first-time"
    root = workspace(
        make_workspace,
        {
            "orphan": f"""
            command: >-
              if [ ! -e {marker} ]; then touch {marker}; sleep 60 & echo $! > {pidfile};
              echo waiting; wait; fi
        """,
        },
    )
    proc = mlform_process("apply", "--yes", cwd=root, start_new_session=True)
    wait_for_line(proc, "runconfig/orphan: waiting\n")
    os.killpg(proc.pid, signal.SIGKILL)  # mlform dies; the run, in its own session, does not
    proc.communicate()
    child = int(pidfile.read_text())
    assert _alive(child)

    again = cli("apply", "--yes", cwd=root)
    assert again.code == 0, again.out + again.err
    assert "was left unfinished by that apply: stopped and marked failed" in again.err
    time.sleep(0.2)
    assert not _alive(child)
    listed = cli("runs", "list", "--runconfig", "orphan", cwd=root).out.splitlines()[1:]
    assert sorted(line.split()[2] for line in listed) == ["completed", "failed"]


def test_runconfig_mistakes_are_reported_with_their_place(cli: Cli, make_workspace: Make) -> None:
    root = workspace(
        make_workspace,
        {
            "bad": """
            command: python t.py ${{inputs.lr}} ${{outputs.modle}} ${{parent.inputs.x}}
            code: ../srcs
            compute: gpu-cluster
            environment: azureml:sklearn@latest
            inputs:
              data: {type: uri_file, path: azureml:irsi:1}
            outputs:
              model: {type: uri_folder}
            trigger: sometimes
        """,
        },
    )
    (root / "data").mkdir()
    (root / "data" / "iris.yml").write_text("name: iris\ntype: uri_file\npath: iris.csv\n")
    (root / "data" / "iris.csv").write_text("a\n1\n")
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    assert ran.err.splitlines() == [
        "runconfigs/bad.yml:1:10: error: command uses ${{inputs.lr}}, but no input 'lr' is "
        "declared (inputs: data); declare it under inputs:",
        "runconfigs/bad.yml:1:10: error: command uses ${{outputs.modle}}, but no output "
        "'modle' is declared (outputs: model); declare it under outputs:",
        "runconfigs/bad.yml:1:10: error: command uses ${{parent.inputs.x}}, but only "
        "${{inputs.NAME}} and ${{outputs.NAME}} are replaced in a command",
        "runconfigs/bad.yml:2:7: error: code folder '../srcs' does not exist (looked for srcs); "
        "create it, or correct the path (it is relative to this file)",
        "runconfigs/bad.yml:3:10: error: unknown compute 'gpu-cluster' (runs can use: local); "
        "declare it in compute/gpu-cluster.yml with type: local, or use compute: local",
        "runconfigs/bad.yml:4:14: error: unknown environment 'sklearn'; declare it in "
        "environments/",
        "runconfigs/bad.yml:6:32: error: unknown data 'irsi' (did you mean 'iris'?); declare "
        "it in data/",
        "runconfigs/bad.yml:9:10: error: trigger must be one of on_change, always, manual, not "
        "'sometimes'",
        "validation failed: 8 errors",
    ]
