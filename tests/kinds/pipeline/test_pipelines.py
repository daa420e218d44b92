"""Pipelines through the real CLI: the example's retraining pipeline reuses what did not
change; a failing step stops its dependents and is all that reruns after the fix;
independent steps run at the same time; binding mistakes are reported where written."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from mlform.state.store import Store
from tests.cli.test_runs import changes
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def step_lines(out: str) -> list[str]:
    """What each step did, in the order the apply said it."""
    found = re.findall(r"step (\w+): (reused|completed|failed|skipped)", out)
    return sorted(f"{step} {what}" for step, what in found)


def child_runs(root: Path) -> list[tuple[str, str, str | None]]:
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        rows = store.query(
            "select r.name, r.status, r.reused_from from runs r join runs p "
            "on r.parent_id = p.id where p.id = (select id from runs where runconfig = "
            "'pipeline/retrain' and parent_id is null order by created_at desc limit 1) "
            "order by r.name"
        )
    return [(str(a), str(b), c) for a, b, c in rows]


def test_the_example_pipeline_reuses_what_did_not_change(
    cli: Cli, example_with_pipeline: Path
) -> None:
    root = example_with_pipeline
    (root / "runconfigs" / "train.yml").write_text(
        (root / "runconfigs" / "train.yml").read_text() + "trigger: manual\n"
    )  # only the pipeline trains here
    first = cli("apply", "--yes", cwd=root)
    assert first.code == 0, first.out + first.err
    assert step_lines(first.out) == [
        "evaluate completed",
        "prepare completed",
        "register completed",
        "train completed",
    ]
    assert "registered iris-pipeline:1" in first.out
    shown = cli("runs", "show", "retrain", cwd=root)  # a pipeline's name: its latest run
    assert shown.code == 0 and "retrain_" in shown.out, shown.err
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0  # editing nothing

    train = root / "src" / "train.py"
    train.write_text(
        train.read_text().replace(
            "LogisticRegression(C=args.C, max_iter=args.max_iter).fit",
            "LogisticRegression(C=args.C, max_iter=args.max_iter, tol=1e-8).fit",
        )
    )
    plan = cli("plan", cwd=root)
    assert changes(plan.out) == [
        "> pipeline/retrain (prepare: reuse; train: code changed (src/train.py); "
        "evaluate: after train; register: after train, evaluate)"
    ]
    second = cli("apply", "--yes", cwd=root)
    assert second.code == 0, second.out + second.err
    assert step_lines(second.out) == [
        "evaluate completed",
        "prepare reused",
        "register completed",
        "train completed",
    ]
    runs = child_runs(root)
    assert [(name, status) for name, status, _ in runs] == [
        ("evaluate", "completed"),
        ("prepare", "completed"),
        ("register", "completed"),
        ("train", "completed"),
    ]
    reused = {name: source for name, _, source in runs}
    assert reused["prepare"] is not None and reused["prepare"].startswith("prepare_")
    assert reused["train"] is None
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0


STEP = """\
import os, sys, time
from pathlib import Path
name, seconds = sys.argv[1], float(sys.argv[2])
if Path(os.environ["PIPE_FAILS"], f"fail-{name}").exists():
    sys.exit(f"step {name} was told to fail")
time.sleep(seconds)
Path(sys.argv[3]).write_text(f"{name} {time.time()}")
"""


def pipeline(continue_on_failure: bool) -> str:
    flag = "true" if continue_on_failure else "false"
    return f"""\
settings:
  continue_on_step_failure: {flag}
  max_concurrency: 2
jobs:
  a:
    code: ../src
    command: python step.py a 0 ${{{{outputs.out}}}}
    outputs: {{out: {{type: uri_file}}}}
  b:
    code: ../src
    command: python step.py b 0 ${{{{outputs.out}}}} ${{{{inputs.x}}}}
    inputs:
      x: ${{{{parent.jobs.a.outputs.out}}}}
    outputs: {{out: {{type: uri_file}}}}
  c:
    code: ../src
    command: python step.py c 0 ${{{{outputs.out}}}} ${{{{inputs.x}}}}
    inputs:
      x: ${{{{parent.jobs.b.outputs.out}}}}
    outputs: {{out: {{type: uri_file}}}}
  d:
    code: ../src
    command: python step.py d 2 ${{{{outputs.out}}}}
    outputs: {{out: {{type: uri_file}}}}
  e:
    code: ../src
    command: python step.py e 2 ${{{{outputs.out}}}}
    outputs: {{out: {{type: uri_file}}}}
"""


def test_a_failed_step_stops_its_dependents_and_only_it_reruns(
    cli: Cli, make_workspace: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: pipes\n",
            "src/step.py": STEP,
            "pipelines/dag.yml": pipeline(continue_on_failure=True),
        }
    )
    monkeypatch.setenv("PIPE_FAILS", str(root))  # outside the code: not in any digest
    (root / "fail-b").write_text("")
    failed = cli("apply", "--yes", cwd=root)
    assert failed.code == 1
    assert step_lines(failed.out) == [
        "a completed",
        "b failed",
        "c skipped",
        "d completed",
        "e completed",
    ]
    assert "step b was told to fail" in failed.out + failed.err

    (root / "fail-b").unlink()
    plan = cli("plan", cwd=root)
    assert changes(plan.out) == [
        "> pipeline/dag (last apply failed: run dag_" + changes(plan.out)[0].split("run dag_")[1]
    ]
    fixed = cli("apply", "--yes", cwd=root)
    assert fixed.code == 0, fixed.out + fixed.err
    assert step_lines(fixed.out) == [
        "a reused",
        "b completed",
        "c completed",
        "d reused",
        "e reused",
    ]

    # Independent steps run side by side: d and e (2 s each) overlapped the first time.
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        rows = store.query(
            "select name, epoch(started_at), epoch(ended_at) from runs "
            "where name in ('d', 'e') and reused_from is null order by name"
        )
    (_, d_start, d_end), (_, e_start, e_end) = rows
    # Overlapping intervals prove they ran side by side; how long they took together is
    # the machine's business, not the test's.
    assert d_start < e_end and e_start < d_end


def test_without_continue_on_step_failure_no_new_step_starts(
    cli: Cli, make_workspace: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: pipes\n",
            "src/step.py": STEP,
            "pipelines/dag.yml": pipeline(continue_on_failure=False).replace(
                "max_concurrency: 2", "max_concurrency: 1"
            ),
        }
    )
    monkeypatch.setenv("PIPE_FAILS", str(root))
    (root / "fail-a").write_text("")
    failed = cli("apply", "--yes", cwd=root)
    assert failed.code == 1
    assert step_lines(failed.out) == ["a failed", "b skipped", "c skipped"]


def test_binding_mistakes_are_reported_where_written(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: pipes\n",
            "src/step.py": STEP,
            "pipelines/bad.yml": """\
                inputs:
                  lr: 0.1
                jobs:
                  prep:
                    code: ../src
                    command: python step.py ${{inputs.x}} ${{outputs.out}}
                    inputs:
                      x: ${{parent.inputs.rate}}
                    outputs: {out: {}}
                  train:
                    code: ../src
                    command: python step.py ${{inputs.x}}
                    inputs:
                      x: ${{parent.jobs.prep.outputs.cleaned}}
                      y: ${{parent.jobs.prepp.outputs.out}}
                      z: ${{parent.jobs.loop.outputs.out}}
                  loop:
                    code: ../src
                    command: python step.py ${{inputs.x}} ${{outputs.out}}
                    inputs:
                      x: ${{parent.jobs.train2.outputs.out}}
                    outputs: {out: {}}
                  train2:
                    code: ../src
                    command: python step.py ${{inputs.x}} ${{outputs.out}}
                    inputs:
                      x: ${{parent.jobs.loop.outputs.out}}
                    outputs: {out: {}}
            """,
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    assert ran.err.splitlines() == [
        "pipelines/bad.yml:8:10: error: ${{parent.inputs.rate}} names no input of the pipeline "
        "(inputs: lr); declare it under the pipeline's inputs:",
        "pipelines/bad.yml:14:10: error: ${{parent.jobs.prep.outputs.cleaned}}: step prep has "
        "no output 'cleaned' (outputs: out); declare it under its outputs:",
        "pipelines/bad.yml:15:10: error: ${{parent.jobs.prepp.outputs.out}} names no step "
        "'prepp' (did you mean 'prep'?)",
        "pipelines/bad.yml:21:7: error: steps bind each other's outputs in a cycle: "
        "loop → train2 → loop",
        "validation failed: 4 errors",
    ]
