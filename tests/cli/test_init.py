from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlform import __version__
from tests.conftest import REPO, Ran

FILES = [
    ".github/workflows/mlform.yml",
    ".gitignore",
    ".schema/component.schema.json",
    ".schema/compute.schema.json",
    ".schema/data.schema.json",
    ".schema/deployment.schema.json",
    ".schema/endpoint.schema.json",
    ".schema/environment.schema.json",
    ".schema/image.schema.json",
    ".schema/model.schema.json",
    ".schema/monitor.schema.json",
    ".schema/pipeline.schema.json",
    ".schema/runconfig.schema.json",
    ".schema/schedule.schema.json",
    ".schema/workspace.schema.json",
    ".vscode/extensions.json",
    ".vscode/settings.json",
    "README.md",
    "data/sample.csv",
    "data/sample.yml",
    "environments/python-env.yml",
    "requirements-mlform.txt",
    "workspace.yml",
]
SCHEMAS = [
    "component.schema.json",
    "compute.schema.json",
    "data.schema.json",
    "deployment.schema.json",
    "endpoint.schema.json",
    "environment.schema.json",
    "image.schema.json",
    "model.schema.json",
    "monitor.schema.json",
    "pipeline.schema.json",
    "runconfig.schema.json",
    "schedule.schema.json",
    "workspace.schema.json",
]


@pytest.fixture
def new(cli: Callable[..., Ran], tmp_path: Path) -> Path:
    """A workspace just made by `mlform init demo`."""
    ran = cli("init", str(tmp_path / "demo"))
    assert ran.code == 0, ran.err
    return tmp_path / "demo"


def files_in(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_init_writes_a_workspace(cli: Callable[..., Ran], tmp_path: Path) -> None:
    target = tmp_path / "demo"
    ran = cli("init", str(target))
    assert ran.code == 0, ran.err
    assert ran.err == ""
    assert ran.out.splitlines() == [
        *(f"  created {f}" for f in FILES),
        "",
        f"New workspace 'demo' in {target}.",
        f"Next: cd {target} && mlform plan",
    ]
    assert files_in(target) == FILES
    assert yaml.safe_load((target / "workspace.yml").read_text()) == {
        "name": "demo",
        "state": ".mlform/state.duckdb",
        "datastores": [
            {
                "name": "workspaceblobstore",
                "path": ".mlform/datastore",
                "default": True,
                "description": "Where data versions and run artifacts are kept.",
            }
        ],
    }
    assert (target / ".gitignore").read_text().splitlines()[-1] == ".mlform/"
    assert (target / "data/sample.csv").read_text().splitlines()[:2] == [
        "sepal_length,sepal_width,petal_length,petal_width,species",
        "5.1,3.5,1.4,0.2,setosa",
    ]


def test_new_workspace_validates_and_plans_its_resources(
    cli: Callable[..., Ran], new: Path
) -> None:
    ran = cli("validate", cwd=new)
    assert (ran.code, ran.err) == (0, "")
    assert ran.out == f"Valid: 3 resources in {new.resolve()}\n"

    ran = cli("plan", cwd=new)
    assert (ran.code, ran.err) == (0, "")
    size = (new / "data/sample.csv").stat().st_size
    python = f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}"
    assert ran.out.splitlines() == [
        "mlform will perform these actions:",
        "",
        "  + datastore/workspaceblobstore  (new: local folder .mlform/datastore)",
        f"  + data/sample                   (new: version 1 (1 file, {size} B))",
        f"  + environment/python-env        (new: version 1 (1 package, {python}))",
        "",
        "Plan: 3 to add, 0 to change, 0 to destroy, 0 to run.",
    ]


def test_init_refuses_a_folder_with_files(cli: Callable[..., Ran], tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    ran = cli("init", str(target))
    assert ran.code == 1
    assert ran.out == ""
    assert ran.err == (
        f"error: {target} is not empty; pass --force to add the workspace files to it "
        "(files already there are kept, never overwritten)\n"
    )
    assert files_in(target) == ["notes.txt"]


def test_init_force_keeps_what_is_there(cli: Callable[..., Ran], tmp_path: Path) -> None:
    target = tmp_path / "busy"
    (target / "data").mkdir(parents=True)
    (target / "workspace.yml").write_text("name: mine\n")
    (target / "data/sample.yml").write_text("name: other\npath: elsewhere.csv\n")
    ran = cli("init", "--force", str(target))
    assert ran.code == 0, ran.err
    kept = ["data/sample.yml", "workspace.yml"]
    assert ran.out.splitlines() == [
        *(f"  created {f}" for f in FILES if f not in kept),
        *(f"  kept    {f}  (already there, left untouched)" for f in kept),
        "",
        f"New workspace 'busy' in {target}.",
        "2 existing files were kept as they are; check they fit.",
        f"Next: cd {target} && mlform plan",
    ]
    assert (target / "workspace.yml").read_text() == "name: mine\n"
    assert (target / "data/sample.yml").read_text() == "name: other\npath: elsewhere.csv\n"
    assert files_in(target) == FILES


def test_init_names_the_workspace(cli: Callable[..., Ran], tmp_path: Path) -> None:
    ran = cli("init", str(tmp_path / "My Project!"))
    assert ran.code == 0, ran.err
    text = (tmp_path / "My Project!" / "workspace.yml").read_text()
    assert yaml.safe_load(text)["name"] == "My-Project"

    ran = cli("init", "--name", "2024.1", str(tmp_path / "x"))
    assert ran.code == 0, ran.err
    assert yaml.safe_load((tmp_path / "x" / "workspace.yml").read_text())["name"] == "2024.1"

    ran = cli("init", "--name", "no spaces", str(tmp_path / "y"))
    assert ran.code == 1
    assert ran.err == (
        "error: --name 'no spaces' is not a valid workspace name: start with a letter or "
        "digit, then use only letters, digits, '-', '_' and '.' (at most 255 characters)\n"
    )
    assert not (tmp_path / "y").exists()


def test_init_honours_dash_c(cli: Callable[..., Ran], tmp_path: Path) -> None:
    ran = cli("init", "inner", cwd=tmp_path)
    assert ran.code == 0, ran.err
    assert (tmp_path / "inner" / "workspace.yml").is_file()


def steps_run(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_workflow_plans_pull_requests_and_applies_main(new: Path) -> None:
    workflow = yaml.safe_load((new / ".github/workflows/mlform.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers == {
        "pull_request": None,
        "push": {"branches": ["main"]},
        "schedule": [{"cron": "*/15 * * * *"}],
        "workflow_dispatch": None,
    }

    plan, apply = workflow["jobs"]["plan"], workflow["jobs"]["apply"]
    assert plan["if"] == "github.event_name == 'pull_request'"
    assert plan["permissions"]["pull-requests"] == "write"
    runs = steps_run(plan)
    assert any("if mlform validate > validate.out 2>&1; then" in run for run in runs)
    assert any("mlform plan --markdown > plan.md" in run for run in runs)
    # One comment, with the GitHub CLI the runners have, found by its marker and edited.
    comment = next(s for s in plan["steps"] if s.get("name", "").startswith("Comment the plan"))
    assert comment["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert "gh api --method PATCH" in comment["run"] and "gh pr comment" in comment["run"]
    assert plan["concurrency"]["group"] == "mlform-plan-${{ github.event.pull_request.number }}"

    assert apply["if"] == "github.event_name == 'push'"
    assert "mlform apply --yes --lock-timeout 600" in steps_run(apply)
    assert apply["concurrency"] == {"group": "mlform-apply", "cancel-in-progress": False}
    # The cron event: one pass runs what schedules/*.yml says is due, one writer at a time.
    scheduled = workflow["jobs"]["schedules"]
    assert scheduled["if"] == (
        "github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'"
    )
    assert "mlform schedules run-due --lock-timeout 600" in steps_run(scheduled)
    assert scheduled["concurrency"] == apply["concurrency"]
    assert "env" not in workflow
    # The state is shared, in a remote backend: nothing is cached in the runner, and each
    # job first refuses a state that is a local file.
    text = (new / ".github/workflows/mlform.yml").read_text()
    assert "actions/cache" not in text
    for job in (plan, apply, scheduled):
        assert "mlform state where --shared" in steps_run(job)
    # Secrets only where read: the age identity and the backend's credentials.
    read = {
        "MLFORM_AGE_IDENTITY": "${{ secrets.MLFORM_AGE_IDENTITY }}",
        **{
            name: f"${{{{ secrets.{name} }}}}"
            for name in (
                "AZURE_STORAGE_CONNECTION_STRING",
                "ARM_ACCESS_KEY",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
            )
        },
    }
    assert [s["env"] for s in plan["steps"] if s.get("id") == "plan"] == [read]
    assert [s["env"] for s in apply["steps"] if s.get("name") == "mlform apply"] == [read]


def test_workflow_installs_the_mlform_the_repository_pins(new: Path) -> None:
    workflow = yaml.safe_load((new / ".github/workflows/mlform.yml").read_text())
    for job in ("plan", "apply"):
        install = next(
            s for s in workflow["jobs"][job]["steps"] if "pip install" in s.get("run", "")
        )
        assert install["run"].splitlines()[-1] == "pip install -r requirements-mlform.txt"
    pinned = (new / "requirements-mlform.txt").read_text().splitlines()
    # This test's mlform is an editable checkout, which a CI runner cannot install: the
    # line is left for the user to fill in, and the workflow refuses it until then.
    assert pinned[-1] == f"mlform @ git+https://github.com/YOUR-ORG/mlform@v{__version__}"
    assert all(line.startswith("#") for line in pinned[:-1])


def test_workflow_comments_validation_errors_and_skips_forks(new: Path) -> None:
    plan = yaml.safe_load((new / ".github/workflows/mlform.yml").read_text())["jobs"]["plan"]
    steps = {s["name"]: s for s in plan["steps"] if "name" in s}
    validate = steps["mlform validate and plan"]["run"]
    assert 'echo "### mlform validate failed"' in validate
    assert "cat validate.out" in validate
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    assert steps["Comment the plan on the pull request"]["if"] == same_repo
    fork = steps["Say why a pull request from a fork gets no comment"]
    assert fork["if"] == same_repo.replace("==", "!=")
    assert fork["run"].startswith('echo "::notice::no plan comment: this pull request comes from')


def actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which(
        "actionlint", path=sysconfig.get_path("scripts")
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("actionlint is missing (it comes with the dev extra); CI must have it")
        pytest.skip("actionlint is missing: pip install -e '.[dev]'")
    return found


def test_actionlint_accepts_the_workflow(new: Path) -> None:
    result = subprocess.run(
        [actionlint(), "-no-color", ".github/workflows/mlform.yml"],
        cwd=new,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_actionlint_is_real_and_finds_mistakes(new: Path) -> None:
    # So a clean result above means something: a broken expression is reported.
    path = new / ".github/workflows/mlform.yml"
    path.write_text(path.read_text().replace("github.repository", "github.repositry", 1))
    result = subprocess.run(
        [actionlint(), "-no-color", "-oneline", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert 'property "repositry" is not defined' in result.stdout


def test_editor_settings_map_the_copied_schemas(new: Path) -> None:
    settings = json.loads((new / ".vscode/settings.json").read_text())
    assert settings == {
        "yaml.schemas": {
            "./.schema/component.schema.json": ["components/*.yml", "components/*.yaml"],
            "./.schema/compute.schema.json": ["compute/*.yml", "compute/*.yaml"],
            "./.schema/data.schema.json": ["data/*.yml", "data/*.yaml"],
            "./.schema/endpoint.schema.json": ["endpoints/*.yml", "endpoints/*.yaml"],
            "./.schema/environment.schema.json": ["environments/*.yml", "environments/*.yaml"],
            "./.schema/image.schema.json": ["images/*.yml", "images/*.yaml"],
            "./.schema/model.schema.json": ["models/*.yml", "models/*.yaml"],
            "./.schema/monitor.schema.json": ["monitors/*.yml", "monitors/*.yaml"],
            "./.schema/pipeline.schema.json": ["pipelines/*.yml", "pipelines/*.yaml"],
            "./.schema/runconfig.schema.json": ["runconfigs/*.yml", "runconfigs/*.yaml"],
            "./.schema/schedule.schema.json": ["schedules/*.yml", "schedules/*.yaml"],
            "./.schema/workspace.schema.json": ["workspace.yml", "workspace.yaml"],
        }
    }
    for name in SCHEMAS:
        assert (new / ".schema" / name).read_bytes() == (REPO / "schema" / name).read_bytes()


def test_schema_prints_one_kind(cli: Callable[..., Ran]) -> None:
    ran = cli("schema", "data")
    assert (ran.code, ran.err) == (0, "")
    assert json.loads(ran.out)["title"] == "mlform data asset"
    assert ran.out == (REPO / "schema" / "data.schema.json").read_text()


def test_schema_refuses_an_unknown_kind(cli: Callable[..., Ran]) -> None:
    ran = cli("schema", "sweep")
    assert (ran.code, ran.out) == (1, "")
    assert ran.err == (
        "error: no schema for kind 'sweep'; the kinds are: component, compute, data, "
        "deployment, endpoint, environment, image, model, monitor, pipeline, runconfig, "
        "schedule, workspace\n"
    )


def test_schema_export_writes_every_schema(cli: Callable[..., Ran], tmp_path: Path) -> None:
    dest = tmp_path / "out"
    ran = cli("schema", "--export", str(dest))
    assert (ran.code, ran.err) == (0, "")
    assert ran.out.splitlines() == [f"  wrote {dest / name}" for name in SCHEMAS]
    assert files_in(dest) == SCHEMAS
    for name in SCHEMAS:
        assert (dest / name).read_bytes() == (REPO / "schema" / name).read_bytes()


def test_init_with_a_remote_state_keeps_the_datastore_beside_it(
    cli: Callable[..., Ran], tmp_path: Path
) -> None:
    url = "s3://team-bucket/ml/state.duckdb"
    assert cli("init", "--state", url, str(tmp_path / "shared")).code == 0
    body = yaml.safe_load((tmp_path / "shared" / "workspace.yml").read_text())
    assert body["state"] == url
    assert body["datastores"][0]["path"] == "s3://team-bucket/datastore"
    assert body["datastores"][0]["default"] is True
    assert cli("state", "where", "--shared", cwd=tmp_path / "shared").out == f"{url}\n"

    assert cli("init", str(tmp_path / "alone")).code == 0
    refused = cli("state", "where", "--shared", cwd=tmp_path / "alone")
    assert refused.code != 0 and "the state is a local file" in refused.err
    assert "mlform state migrate --to" in refused.err

    bad = cli("init", "--state", "ftp://host/state.duckdb", str(tmp_path / "bad"))
    assert bad.code == 1
    assert "--state: state URL ftp://host/state.duckdb: the scheme ftp:// is not" in bad.err
    assert not (tmp_path / "bad").exists()
