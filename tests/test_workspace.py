"""The library's front door, as a script would use it."""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

import mlform
from mlform.errors import MlformError, NotFound
from mlform.plan.model import Plan
from mlform.workspace import Workspace

Make = Callable[[Mapping[str, str]], Path]

SMALL = {
    "workspace.yml": "name: small\n",
    "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
    "data/x.csv": "a,b\n1,2\n",
}


def test_planning_leaves_the_garbage_collector_as_it_found_it(make_workspace: Make) -> None:
    # Loading and planning pause the cyclic collector; a library must not keep it off.
    root = make_workspace(SMALL)
    assert gc.isenabled()
    assert [c.address for c in Workspace(root).plan().changes] == [
        "datastore/workspaceblobstore",
        "data/x",
    ]
    assert gc.isenabled()
    gc.disable()
    try:
        Workspace(root).plan()
        assert not gc.isenabled()
    finally:
        gc.enable()


TRAINED = {
    "workspace.yml": "name: lib\n",
    "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
    "data/x.csv": "a,b\n1,2\n",
    "runconfigs/fit.yml": """\
        type: command
        experiment_name: lib-exp
        code: ../src
        command: python fit.py
        """,
    "src/fit.py": """\
        import mlform

        run = mlform.get_run()
        run.log_params({"C": 0.5})
        for step, loss in enumerate([0.9, 0.4]):
            run.log("loss", loss, step=step)
        run.log("accuracy", 0.75)
        """,
}


def test_the_documented_example_plans_then_applies(make_workspace: Make) -> None:
    root = make_workspace(TRAINED)
    ws = Workspace(root)
    assert ws.root == root
    assert ws.state_path == root / ".mlform" / "state.duckdb"
    assert ws.validate().name == "lib"
    planned = ws.plan()
    assert [(c.symbol, c.address) for c in planned.changes] == [
        ("+", "datastore/workspaceblobstore"),
        ("+", "data/x"),
        (">", "runconfig/fit"),
    ]
    asked: list[str] = []

    def never(plan: Plan) -> bool:
        asked.append(plan.summary())
        return False

    report = ws.apply(auto_approve=True, confirm=never)
    assert asked == []  # auto_approve is `mlform apply --yes`: nothing is asked
    assert report.ok and report.confirmed and report.failed == []
    assert [(r.change.address, r.status.value) for r in report.results] == [
        ("datastore/workspaceblobstore", "succeeded"),
        ("data/x", "succeeded"),
        ("runconfig/fit", "succeeded"),
    ]
    assert ws.plan().changes == ()
    assert ws.apply(auto_approve=True).results == []  # nothing to do, nothing done


def test_apply_asks_confirm_unless_auto_approved(make_workspace: Make) -> None:
    ws = Workspace(make_workspace(SMALL))
    report = ws.apply(confirm=lambda plan: False)
    assert (report.confirmed, report.ok, report.results) == (False, False, [])
    assert len(ws.plan().changes) == 2  # nothing was applied
    assert ws.apply().ok  # the default confirm approves, as a script expects


def test_runs_run_and_metrics_read_what_a_run_logged(make_workspace: Make) -> None:
    ws = Workspace(make_workspace(TRAINED))
    assert ws.apply(auto_approve=True).ok
    found = ws.runs(experiment="lib-exp")
    assert [(r.runconfig, r.status, r.experiment) for r in found] == [
        ("runconfig/fit", "completed", "lib-exp")
    ]
    assert ws.runs(status="failed") == []
    assert [r.id for r in ws.runs(limit=1)] == [found[0].id]
    run = ws.run("fit")
    assert run.id == found[0].id == ws.run(run.id[:12]).id
    assert run.params == {"C": "0.5"}
    assert run.metrics == {"loss": 0.4, "accuracy": 0.75}
    assert [(k, s, v) for k, s, _, v in ws.metrics("fit", "loss")] == [
        ("loss", 0, 0.9),
        ("loss", 1, 0.4),
    ]
    assert sorted(k for k, *_ in ws.metrics("fit")) == ["accuracy", "loss", "loss"]


def test_store_opens_the_state_for_queries(make_workspace: Make) -> None:
    ws = Workspace(make_workspace(SMALL))
    ws.apply(auto_approve=True)
    with ws.store("test") as store:
        assert sorted(store.recorded()) == ["data/x", "datastore/workspaceblobstore"]


def test_a_missing_run_is_a_clear_error(make_workspace: Make) -> None:
    ws = Workspace(make_workspace(SMALL))
    with pytest.raises(NotFound) as caught:
        ws.run("nope")
    assert "nope" in str(caught.value)


def test_a_folder_without_a_workspace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MlformError) as caught:
        Workspace(tmp_path)
    assert str(caught.value) == (
        f"no workspace.yml in {tmp_path} or any folder above it; "
        "run `mlform init` to create a workspace, or pass -C PATH"
    )


def test_the_package_exports_the_workspace() -> None:
    assert mlform.Workspace is Workspace
