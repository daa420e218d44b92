"""The model registry through the real CLI: gated registration from runs on commits,
models/*.yml files, one-off registration, tags, archive, delete, download, lineage."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.state.store import Store
from tests.cli.test_runs import changes, git
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def models_list(cli: Cli, cwd: Path, *args: str) -> list[list[str]]:
    """`models list` rows as NAME, VERSION, KIND, and TAGS columns."""
    ran = cli("models", "list", *args, cwd=cwd)
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()[1:]
    return [[line.split()[0], line.split()[1], line.split()[2]] for line in lines]


def test_retraining_registers_only_better_models_with_lineage(cli: Cli, example: Path) -> None:
    git(example, "init", "-q", "-b", "main")
    git(example, "add", "-A")
    git(example, "commit", "-qm", "one")
    first = cli("apply", "--yes", cwd=example)
    assert first.code == 0, first.out + first.err
    assert (
        "registered iris-classifier:1 (accuracy 0.9778 >= 0.9; accuracy 0.9778: no version yet "
        "to compare with)"
    ) in first.out
    assert models_list(cli, example) == [["iris-classifier", "1", "scikit-learn"]]

    # Unchanged inputs: nothing runs, nothing is registered.
    again = cli("plan", "--detailed-exitcode", cwd=example)
    assert again.code == 0, again.out

    # A worse model: trained on one measurement only. It runs, and registers nothing.
    train = example / "src" / "train.py"
    good = train.read_text()
    train.write_text(good.replace('frame.drop(columns="species")', 'frame[["sepal_width"]]', 1))
    git(example, "commit", "-qam", "worse")
    plan = cli("plan", cwd=example)
    assert changes(plan.out) == ["> runconfig/train (code: src/train.py modified)"]
    assert (
        "note: runconfig/train registers model iris-classifier if accuracy >= 0.9 and "
        "accuracy > latest (latest: iris-classifier:1, accuracy 0.9778)"
    ) in plan.out
    worse = cli("apply", "--yes", cwd=example)
    assert worse.code == 0, worse.out + worse.err
    assert (
        "model iris-classifier not registered (accuracy 0.5556 is not >= 0.9; accuracy 0.5556 "
        "is not > latest 0.9778 (iris-classifier:1))"
    ) in worse.out
    assert models_list(cli, example) == [["iris-classifier", "1", "scikit-learn"]]
    assert cli("plan", "--detailed-exitcode", cwd=example).code == 0  # ran: not again

    # A better one: all four measurements, less regularisation.
    train.write_text(good)
    config = example / "runconfigs" / "train.yml"
    config.write_text(config.read_text().replace("  C: 0.1\n", "  C: 1.0\n"))
    git(example, "commit", "-qam", "better")
    commit = git(example, "rev-parse", "HEAD")
    better = cli("apply", "--yes", cwd=example)
    assert better.code == 0, better.out + better.err
    assert "registered iris-classifier:2 (accuracy 1 >= 0.9; accuracy 1 > latest 0.9778" in (
        better.out
    )
    shown = cli("models", "show", "iris-classifier:2", cwd=example).out
    assert f"    commit:      {commit} on main\n" in shown
    assert "    input:       training_data = iris:1\n" in shown
    assert "    environment: sklearn-env:1\n" in shown
    assert "  type:        custom_model (scikit-learn)\n" in shown
    assert "  tag:         algorithm=logistic-regression\n" in shown
    assert "  versions: 1, 2\n" in shown
    run_id = shown.split("    run:         ")[1].split()[0]
    assert cli("runs", "show", run_id, cwd=example).code == 0

    # The same model again (--rerun trains identically): no second copy of it.
    rerun = cli("apply", "--yes", "--rerun", "train", cwd=example)
    assert "accuracy 1 is not > latest 1 (iris-classifier:2)" in rerun.out
    assert [row[1] for row in models_list(cli, example)] == ["1", "2"]


def test_downloads_are_verified_against_the_digest(
    cli: Cli, make_workspace: Make, tmp_path: Path
) -> None:
    root = make_workspace({"workspace.yml": "name: reg\n", "model/weights.bin": "w" * 100})
    (root / "model" / "config.json").write_text("{}")
    ran = cli("models", "register", "net", str(root / "model"), "--tag", "team=vision", cwd=root)
    assert (ran.code, ran.out, ran.err) == (0, "registered net:1\n", "")
    same = cli("models", "register", "net", str(root / "model"), cwd=root)
    assert same.out == "no new version: the files are those of net:1\n"

    got = cli("models", "download", "net:1", str(tmp_path / "got"), cwd=root)
    assert got.out == f"downloaded net:1: 2 file(s) into {tmp_path / 'got'}, digests verified\n"
    assert (tmp_path / "got" / "weights.bin").read_text() == "w" * 100

    blob = next(
        p
        for p in (root / ".mlform" / "datastore" / "blobs").rglob("*")
        if p.is_file() and p.stat().st_size == 100
    )
    blob.write_bytes(b"x" * 100)  # damaged behind mlform's back
    bad = cli("models", "download", "net:1", str(tmp_path / "bad"), cwd=root)
    assert bad.code == 1
    assert "net:1: weights.bin in datastore workspaceblobstore does not match its digest" in (
        bad.err
    )
    assert not (tmp_path / "bad" / "weights.bin").exists()


def test_tags_archive_restore_and_delete(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace({"workspace.yml": "name: reg\n", "a.bin": "a", "b.bin": "b"})
    cli("models", "register", "m", str(root / "a.bin"), cwd=root)
    cli("models", "register", "m", str(root / "b.bin"), "--tag", "stage=dev", cwd=root)
    tagged = cli("models", "tag", "m:2", "stage=prod", "owner=ana", cwd=root)
    assert tagged.out == "m:2 tags: owner=ana, stage=prod\n"
    assert models_list(cli, root, "--tag", "stage=prod") == [["m", "2", "custom_model"]]
    assert cli("models", "tag", "m:2", "--remove", "owner", cwd=root).out == (
        "m:2 tags: stage=prod\n"
    )
    missing = cli("models", "tag", "m:2", "--remove", "nope", cwd=root)
    assert missing.err == "error: m:2 has no tag nope (tags: stage)\n"

    assert cli("models", "archive", "m:2", cwd=root).out == "archived m:2\n"
    assert "m:1" in cli("models", "show", "m@latest", cwd=root).out  # archived: not latest
    assert [r[1] for r in models_list(cli, root)] == ["1"]
    assert [r[1] for r in models_list(cli, root, "--archived")] == ["1", "2"]
    assert cli("models", "restore", "m:2", cwd=root).out == "restored m:2\n"

    assert cli("models", "delete", "m:1", cwd=root).out == "deleted m:1; its number is not reused\n"
    (root / "c.bin").write_text("c")
    assert cli("models", "register", "m", str(root / "c.bin"), cwd=root).out == ("registered m:3\n")
    gone = cli("models", "show", "m:1", cwd=root)
    assert gone.err == "error: model m has no version 1 (versions: 2, 3)\n"
    unknown = cli("models", "show", "mm", cwd=root)
    assert unknown.err == (
        "error: no model named 'mm' (did you mean 'm'?); `mlform models list` shows the registry\n"
    )


def test_a_model_serving_a_deployment_cannot_be_deleted(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: reg\n",
            "models/m.yml": "name: m\npath: m.bin\n",
            "models/m.bin": "weights",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    state = root / ".mlform" / "state.duckdb"
    with Store.open(state, "test", write=True) as store, store.transaction() as con:
        con.execute(
            "insert into deployments (endpoint, name, model, compute, status, created_at, "
            "updated_at) values ('iris', 'blue', 'm:1', 'local', 'running', now(), now())"
        )
    with Store.open(state, "test", write=False) as store:
        serial = store.identity().serial

    for args in (("delete", "m:1"), ("archive", "m")):
        ran = cli("models", *args, cwd=root)
        assert ran.code == 1
        verb = args[0]
        target = "m:1" if verb == "delete" else "model m"
        assert ran.err == (
            f"error: cannot {verb} {target}: it is used by the active deployment iris/blue "
            "(m:1); point the deployment at another version (or delete it) and apply first\n"
        )
    (root / "models" / "m.yml").unlink()
    plan = cli("plan", cwd=root)
    assert plan.code == 1
    assert (
        "model/m cannot be removed: its versions are used by the active deployment iris/blue "
        "(m:1). Restore models/m.yml, or move the deployment to another model and apply first"
    ) in plan.out + plan.err
    assert cli("apply", "--yes", cwd=root).code == 1
    with Store.open(state, "test", write=False) as store:
        assert store.identity().serial == serial  # nothing was written
    assert models_list(cli, root) == [["m", "1", "custom_model"]]


def test_models_files_register_when_their_content_changes(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: reg\n",
            "models/clf.yml": "name: clf\npath: clf\ntags:\n  team: a\n",
            "models/clf/MLmodel": "flavors:\n  python_function: {}\n",
            "models/clf/model.pkl": "v1",
        }
    )
    first = cli("apply", "--yes", cwd=root)
    assert first.code == 0, first.err
    assert "+ model/clf created: registered clf:1 (mlflow (python_function), 2 files" in first.out
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    (root / "models" / "clf" / "model.pkl").write_text("v2")
    time.sleep(0.01)
    plan = cli("plan", cwd=root)
    assert changes(plan.out) == ["~ model/clf (content changed: model.pkl modified; version 1 → 2)"]
    assert cli("apply", "--yes", cwd=root).code == 0

    spec = root / "models" / "clf.yml"
    spec.write_text(spec.read_text().replace("team: a", "team: b"))
    tags = cli("plan", cwd=root)
    assert changes(tags.out) == [
        "~ model/clf (tags.team: 'a' → 'b'; content unchanged, stays version 2)"
    ]
    assert cli("apply", "--yes", cwd=root).code == 0
    assert "  tag:         team=b\n" in cli("models", "show", "clf", cwd=root).out

    (root / "models" / "clf" / "model.pkl").write_text("v1")  # back to version 1's files
    back = cli("apply", "--yes", cwd=root)
    assert "no new version: the files are those of clf:1" in back.out
    assert [r[1] for r in models_list(cli, root)] == ["1", "2"]

    spec.unlink()  # versions are history: archived, not erased
    gone = cli("apply", "--yes", cwd=root)
    assert "- model/clf destroyed: versions archived" in gone.out
    assert models_list(cli, root) == []
    assert [r[1] for r in models_list(cli, root, "--archived")] == ["1", "2"]


def test_registry_mistakes_are_reported_with_their_place(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: reg\n",
            "models/a.yml": "name: a\npath: missing.pkl\n",
            "models/b.yml": "name: b\npath: b\ntype: mlflow_model\n",
            "models/b/model.pkl": "x",
            "runconfigs/train.yml": (
                "command: echo hi\n"
                "register_model:\n"
                "  name: a\n"
                "  path: ../escape\n"
                "  when: accuracy >> 0.9\n"
            ),
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    assert ran.err.splitlines() == [
        "models/a.yml:1:7: error: model 'a' is also registered by runconfig/train "
        "(runconfigs/train.yml:3:9); give one of them another model name",
        "models/a.yml:2:7: error: model path 'missing.pkl' does not exist (looked for "
        "models/missing.pkl); create it, or correct the path (it is relative to this file)",
        "models/b.yml:3:7: error: 'b' has no MLmodel file, so it is not an MLflow model; use "
        "type: custom_model or point path: at the folder mlflow saved",
        "runconfigs/train.yml:4:9: error: path '../escape' must be inside the run's outputs: "
        "write it relative to them, e.g. model for ${{outputs.model}}",
        "runconfigs/train.yml:5:9: error: cannot read condition 'accuracy >> 0.9': write METRIC "
        "OP VALUE with OP one of >= > <= < == != and VALUE a number or latest, e.g. accuracy "
        ">= 0.9 and accuracy > latest",
        "validation failed: 5 errors",
    ]


def test_a_run_without_the_model_it_promises_fails_clearly(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: reg\n",
            "src/train.py": "print('trained, but saved nothing')\n",
            "runconfigs/train.yml": (
                "code: ../src\n"
                "command: python train.py\n"
                "outputs:\n  model: {}\n"
                "register_model:\n  name: m\n  path: model/model.pkl\n"
            ),
        }
    )
    ran = cli("apply", "--yes", cwd=root)
    assert ran.code == 1
    assert (
        "completed, but its outputs have no model/model.pkl to register as model m "
        "(register_model.path, runconfigs/train.yml:1); write the model there, e.g. under "
        "${{outputs.model}}, or correct the path"
    ) in ran.out + ran.err
    assert cli("models", "list", cwd=root).out.startswith("No models registered yet.")
    runs = cli("runs", "list", cwd=root).out
    assert " completed " in runs  # the run itself did complete, and is on record
    (root / "src" / "train.py").write_text(
        "import os, pathlib, pickle\n"
        "out = pathlib.Path(os.environ['MLFORM_OUTPUT_MODEL'])\n"
        "(out / 'model.pkl').write_bytes(pickle.dumps({'w': 1}))\n"
    )
    fixed = cli("apply", "--yes", cwd=root)
    assert fixed.code == 0, fixed.out + fixed.err
    assert "registered m:1" in fixed.out


def test_a_version_records_the_folder_it_was_registered_from(
    cli: Cli, make_workspace: Make
) -> None:
    # A deployment finds a folder's files under its name in AZUREML_MODEL_DIR, as on Azure.
    root = make_workspace(
        {
            "workspace.yml": "name: reg\n",
            "models/folder.yml": "name: folder\npath: ../model-1/model/\n",
            "model-1/model/sklearn_regression_model.pkl": "m",
            "models/single.yml": "name: single\npath: ../sample_m1.pkl\n",
            "sample_m1.pkl": "s",
            "net/weights.bin": "w",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    assert cli("models", "register", "net", str(root / "net"), cwd=root).code == 0
    assert cli("models", "register", "file", str(root / "net" / "weights.bin"), cwd=root).code == 0
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        rows = store.query("select name, folder from models order by name")
    assert rows == [("file", None), ("folder", "model"), ("net", "net"), ("single", None)]
