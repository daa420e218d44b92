"""Plan and apply on the bundled example, end to end through the real CLI."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.conftest import EXAMPLE, Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def _changes(out: str) -> list[str]:
    """The change lines of a text plan, with run-specific paths cut."""
    return [line.strip() for line in out.splitlines() if re.match(r"^\s*(\+|~|-|-/\+|>) ", line)]


def test_plan_apply_plan_on_the_example(cli: Cli, example: Path) -> None:
    first = cli("plan", "--detailed-exitcode", cwd=example)
    assert first.code == 2, first.err
    assert [" ".join(line.split()[:2]) for line in _changes(first.out)] == [
        "+ compute/container",
        "+ datastore/workspaceblobstore",
        "+ data/iris",
        "+ environment/sklearn-env",
        "> runconfig/train",
    ]
    assert "+ data/iris                     (new: version 1 (1 file, 3.8 KiB))" in first.out
    assert "  > runconfig/train               (no run yet)" in first.out
    assert first.out.rstrip().endswith("Plan: 4 to add, 0 to change, 0 to destroy, 1 to run.")

    applied = cli("apply", "--yes", cwd=example)
    assert applied.code == 0, applied.out + applied.err
    assert "Apply complete: 4 added, 0 changed, 0 destroyed, 1 ran." in applied.out

    again = cli("plan", "--detailed-exitcode", cwd=example)
    assert again.code == 0, again.out + again.err
    assert again.out.strip() == (
        "No changes. The workspace matches its files (5 resources up to date)."
    )

    noop = cli("apply", "--yes", cwd=example)
    assert noop.code == 0
    assert "No changes." in noop.out


def test_editing_data_plans_a_new_version_with_the_reason(cli: Cli, example: Path) -> None:
    assert cli("apply", "--yes", cwd=example).code == 0
    csv = example / "data" / "iris.csv"
    csv.write_text(csv.read_text() + "5.0,3.3,1.4,0.2,setosa\n")

    plan = cli("plan", "--detailed-exitcode", cwd=example)
    assert plan.code == 2
    assert _changes(plan.out) == [
        "~ data/iris        (content changed: iris.csv modified; version 1 → 2)",
        "> runconfig/train  (data: iris 1 → 2)",
    ]
    assert cli("apply", "--yes", cwd=example).code == 0
    listed = cli("data", "show", "iris", cwd=example)
    assert "iris:2" in listed.out
    assert "versions: 1, 2" in listed.out
    assert cli("plan", "--detailed-exitcode", cwd=example).code == 0


def test_editing_only_metadata_updates_without_a_new_version(cli: Cli, example: Path) -> None:
    assert cli("apply", "--yes", cwd=example).code == 0
    spec = example / "data" / "iris.yml"
    spec.write_text(spec.read_text().replace("rows: 150", "rows: 151"))
    plan = cli("plan", cwd=example)
    assert _changes(plan.out) == [
        "~ data/iris  (tags.rows: 150 → 151; content unchanged, stays version 1)"
    ]
    assert cli("apply", "--yes", cwd=example).code == 0
    shown = cli("data", "show", "iris", cwd=example)
    assert "tag:         rows=151" in shown.out
    assert "versions: 1\n" in shown.out


def test_deleting_an_environment_file_plans_its_deletion(cli: Cli, example: Path) -> None:
    assert cli("apply", "--yes", cwd=example).code == 0
    (example / "environments" / "sklearn.yml").unlink()
    still_used = cli("plan", cwd=example)
    assert still_used.code == 1
    assert still_used.err.splitlines() == [
        "runconfigs/train.yml:23:14: error: unknown environment 'sklearn-env'; declare it in "
        "environments/",
        "validation failed: 1 error",
    ]
    (example / "runconfigs" / "train.yml").unlink()
    plan = cli("plan", "--detailed-exitcode", cwd=example)
    assert plan.code == 2
    assert _changes(plan.out) == [
        "- runconfig/train          (no longer declared (was runconfigs/train.yml:3))",
        "- environment/sklearn-env  (no longer declared (was environments/sklearn.yml:3))",
    ]
    assert "Plan: 0 to add, 0 to change, 2 to destroy, 0 to run." in plan.out
    applied = cli("apply", "--yes", cwd=example)
    assert applied.code == 0, applied.out
    assert "2 destroyed" in applied.out
    assert cli("plan", "--detailed-exitcode", cwd=example).code == 0


def test_protected_resource_refuses_deletion(cli: Cli, example: Path) -> None:
    shutil.rmtree(example / "runconfigs")  # nothing else may name the data
    spec = example / "data" / "iris.yml"
    spec.write_text(spec.read_text() + "protect: true\n")
    assert cli("apply", "--yes", cwd=example).code == 0
    spec.unlink()
    plan = cli("plan", cwd=example)
    assert plan.code == 1
    assert "error: data/iris is protected (protect: true) and can't be deleted" in plan.out
    applied = cli("apply", "--yes", cwd=example)
    assert applied.code == 1
    assert "data/iris is protected" in applied.err
    shown = cli("data", "show", "iris:1", cwd=example)
    assert shown.code == 0  # nothing was deleted


def test_recreating_a_deleted_asset_keeps_numbering(cli: Cli, example: Path) -> None:
    shutil.rmtree(example / "runconfigs")
    assert cli("apply", "--yes", cwd=example).code == 0
    spec = example / "data" / "iris.yml"
    text = spec.read_text()
    spec.unlink()
    assert cli("apply", "--yes", cwd=example).code == 0
    spec.write_text(text)
    plan = cli("plan", cwd=example)
    assert "+ data/iris  (new: version 2 (1 file, 3.8 KiB))" in plan.out
    assert cli("apply", "--yes", cwd=example).code == 0
    shown = cli("data", "show", "iris", cwd=example)
    assert "iris:2" in shown.out
    assert "versions: 1, 2" in shown.out  # version 1 archived, not erased


def test_saved_plan_applies_exactly_and_stale_is_refused(
    cli: Cli, example: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    made = cli("plan", "-o", str(saved), cwd=example)
    assert made.code == 0
    assert f"Saved the plan to {saved}" in made.out
    assert json.loads(saved.read_text())["summary"]["add"] == 4

    applied = cli("apply", str(saved), cwd=example)  # a saved plan needs no --yes
    assert applied.code == 0, applied.err
    assert "Apply complete: 4 added" in applied.out

    again = cli("apply", str(saved), cwd=example)
    assert again.code == 1
    assert "the saved plan was made at state serial 0, and the state is now at serial" in again.err
    assert "Run `mlform plan -o FILE` again" in again.err


def test_saved_plan_is_stale_when_files_changed(cli: Cli, example: Path, tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    assert cli("plan", "-o", str(saved), cwd=example).code == 0
    csv = example / "data" / "iris.csv"
    csv.write_text(csv.read_text() + "5.0,3.3,1.4,0.2,setosa\n")
    refused = cli("apply", str(saved), cwd=example)
    assert refused.code == 1
    assert (
        "the workspace files changed since the plan was saved (data/iris, runconfig/train)"
    ) in refused.err
    assert not (example / ".mlform" / "state.duckdb").exists() or cli(
        "data", "list", cwd=example
    ).out.startswith("No data registered yet")


def test_not_a_plan_file(cli: Cli, example: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "plan.json"
    bogus.write_text("{}")
    ran = cli("apply", str(bogus), cwd=example)
    assert ran.code == 1
    assert "is not a plan saved by `mlform plan -o`" in ran.err
    missing = cli("apply", str(tmp_path / "nope.json"), cwd=example)
    assert "no saved plan at" in missing.err


def test_apply_needs_yes_without_a_terminal(cli: Cli, example: Path) -> None:
    ran = cli("apply", cwd=example)
    assert ran.code == 1
    assert "apply needs confirmation: run it on a terminal, pass --yes" in ran.err
    assert cli("data", "list", cwd=example).out.startswith("No data registered yet")


def test_markdown_and_json_renderings(cli: Cli, example: Path) -> None:
    md = cli("plan", "--markdown", cwd=example)
    assert md.out.startswith(
        "### mlform plan: Plan: 4 to add, 0 to change, 0 to destroy, 1 to run\n"
    )
    assert "```diff\n+ + compute/container" in md.out
    data = json.loads(cli("plan", "--json", cwd=example).out)
    assert data["summary"] == {"add": 4, "change": 0, "destroy": 0, "run": 1, "unchanged": 0}
    assert [c["address"] for c in data["changes"]] == [
        "compute/container",
        "datastore/workspaceblobstore",
        "data/iris",
        "environment/sklearn-env",
        "runconfig/train",
    ]
    assert data["changes"][2]["depends_on"] == ["datastore/workspaceblobstore"]
    assert [[r["code"] for r in c["reason_details"]] for c in data["changes"]] == [
        ["created"],
        ["created"],
        ["created"],
        ["created"],
        ["no_run_yet"],
    ]
    assert data["changes"][2]["reason_details"] == [
        {
            "code": "created",
            "text": "new: version 1 (1 file, 3.8 KiB)",
            "version": "1",
            "summary": "1 file, 3.8 KiB",
        }
    ]
    assert [c["reasons"] for c in data["changes"]][2:] == [
        ["new: version 1 (1 file, 3.8 KiB)"],
        [data["changes"][3]["reason_details"][0]["text"]],
        ["no run yet"],
    ]


def test_the_state_stores_component_keys_as_earlier_versions_did(cli: Cli, example: Path) -> None:
    """What an earlier mlform wrote, this one reads alike: a plan of an applied state
    compares the same key strings, so nothing is planned."""
    assert cli("apply", "--yes", cwd=example).code == 0
    stored = {}
    for address in ("data/iris", "environment/sklearn-env", "runconfig/train"):
        shown = json.loads(cli("state", "show", address, "--json", cwd=example).out)
        stored[address] = sorted(shown["components"])
    assert stored == {
        "data/iris": ["dep:datastore/workspaceblobstore", "file:iris.csv", "spec"],
        "environment/sklearn-env": ["build", "spec"],
        "runconfig/train": [
            "code:src/train.py",
            "dep:data/iris",
            "dep:environment/sklearn-env",
            "environment",
            "input:training_data",
            "spec",
        ],
    }
    assert cli("plan", "--detailed-exitcode", cwd=example).code == 0


def test_a_plan_saved_without_reason_details_still_applies(
    cli: Cli, example: Path, tmp_path: Path
) -> None:
    """As an earlier mlform saved it: reasons as text only."""
    saved = tmp_path / "plan.json"
    assert cli("plan", "-o", str(saved), cwd=example).code == 0
    data = json.loads(saved.read_text())
    for change in data["changes"]:
        del change["reason_details"]
    saved.write_text(json.dumps(data))
    applied = cli("apply", str(saved), cwd=example)
    assert applied.code == 0, applied.err
    assert "Apply complete: 4 added, 0 changed, 0 destroyed, 1 ran." in applied.out


def test_data_head_reads_through_duckdb(cli: Cli, example: Path) -> None:
    assert cli("apply", "--yes", cwd=example).code == 0
    head = cli("data", "head", "iris:1", "--rows", "2", cwd=example)
    assert head.code == 0, head.err
    lines = head.out.splitlines()
    assert lines[0] == (
        "schema: sepal_length DOUBLE, sepal_width DOUBLE, petal_length DOUBLE, "
        "petal_width DOUBLE, species VARCHAR"
    )
    assert lines[3].split() == ["5.1", "3.5", "1.4", "0.2", "setosa"]
    assert len(lines) == 5
    missing = cli("data", "head", "iris:7", cwd=example)
    assert missing.code == 1
    assert "data asset 'iris' has no version 7 (versions: 1)" in missing.err
    unknown = cli("data", "show", "irsi", cwd=example)
    assert "no data asset named 'irsi'; registered: iris" in unknown.err


def test_two_copies_of_a_workspace_plan_alike(cli: Cli, tmp_path: Path) -> None:
    # Two clones on two machines: different folders, different depths, nothing applied.
    outputs = []
    for where in ("a", "b/deeper/still"):
        root = tmp_path / where / "iris"
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlform"))
        shown = [cli(*args, cwd=root) for args in (("plan",), ("plan", "--json"))]
        assert [(ran.code, ran.err) for ran in shown] == [(0, ""), (0, "")]
        outputs.append([ran.out for ran in shown])
    assert outputs[0] == outputs[1]
    assert "local folder .mlform/datastore" in outputs[0][0]
    assert str(tmp_path) not in "".join(outputs[0])


def test_a_moved_workspace_plans_no_changes(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: moved\n",
            "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
            "data/x.csv": "a,b\n1,2\n",
            "models/m.yml": "name: m\npath: m.json\n",
            "models/m.json": "{}\n",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    moved = root.parent / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(root, moved)
    ran = cli("plan", "--detailed-exitcode", cwd=moved)
    assert (ran.code, ran.err) == (0, ""), ran.out


def test_apply_that_leaves_changes_behind_says_so_and_fails(cli: Cli, make_workspace: Make) -> None:
    # A job that writes into a declared data file while the apply runs: every change
    # succeeds, yet the workspace no longer matches what was applied.
    root = make_workspace(
        {
            "workspace.yml": "name: moving\n",
            "environments/plain.yml": "name: plain\npip: []\n",
            "data/notes.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
                name: notes
                type: uri_file
                path: notes.csv
                """,
            "data/notes.csv": "a,b\n",
            "src/append.py": """
                import sys

                with open(sys.argv[1], "a") as f:
                    f.write("1,2\\n")
                """,
        }
    )
    (root / "runconfigs").mkdir()
    (root / "runconfigs" / "append.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "type: command\n"
        "name: append\n"
        "code: ../src\n"
        f"command: python append.py {root / 'data' / 'notes.csv'}\n"
        "environment: azureml:plain@latest\n"
        "compute: local\n"
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 1, applied.out + applied.err
    assert applied.out.endswith(
        "\nApply incomplete: 4 succeeded, but a plan made now still shows 1 change:\n"
        "  ~ data/notes (content changed: notes.csv modified; version 1 → 2)\n"
        "Run `mlform plan` to see why, and `mlform apply` again to retry.\n"
    ), applied.out
    assert "Apply complete" not in applied.out
    assert _changes(cli("plan", cwd=root).out) == [
        "~ data/notes  (content changed: notes.csv modified; version 1 → 2)"
    ]
