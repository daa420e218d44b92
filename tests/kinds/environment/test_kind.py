"""Environments: packages from pip lines, requirements and conda files; builds shared."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from mlform.kinds.environment.kind import PYTHON
from mlform.state.store import Store
from tests.apply.test_interrupted import slow_package
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def outputs(cli: Cli, root: Path, address: str) -> dict[str, object]:
    shown = json.loads(cli("state", "show", address, cwd=root).out)
    return dict(shown["outputs"])


def planned(out: str) -> dict[str, str]:
    """Each planned address and why, the way `mlform plan` shows it."""
    found = {}
    for line in out.splitlines():
        if line.startswith(("  +", "  ~", "  >")):
            address, _, why = line[4:].partition("  ")
            found[address] = why.strip().removeprefix("(").removesuffix(")")
    return found


def test_requirements_and_conda_pip_sections_are_installed(
    cli: Cli, make_workspace: Make, tmp_path: Path
) -> None:
    one = slow_package(tmp_path / "ws" / "one")
    root = make_workspace(
        {
            "workspace.yml": "name: envs\n",
            "environments/req.yml": "name: req\nrequirements: requirements.txt\n",
            "environments/requirements.txt": f"# a comment\n{one}  # inline comment\n",
            "environments/conda.yml": "name: conda\nconda_file: conda-env.yml\n",
            "environments/conda-env.yml": f"""
            name: train
            channels: [conda-forge]
            dependencies:
              - python=3.11
              - pip
              - pip:
                  - {one}
        """,
        }
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    req, conda = outputs(cli, root, "environment/req"), outputs(cli, root, "environment/conda")
    assert req["build_digest"] == conda["build_digest"]  # the same packages: one build
    assert applied.out.count("building virtual environment") == 1
    check = subprocess.run(
        [str(req["python"]), "-c", "import slowpkg; print(slowpkg.VALUE)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.stdout.strip() == "1"

    (root / "environments/requirements.txt").write_text(f"{one}\n# pinned later\n")
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0  # comments don't count
    (root / "environments/requirements.txt").write_text("")
    plan = cli("plan", cwd=root)
    assert (
        "~ environment/req  (content changed: requirements.txt modified; version 1 → 2)" in plan.out
    )


def test_variables_change_the_version_but_share_the_build(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: vars\n",
            "environments/a.yml": "name: a\nenvironment_variables:\n  MODE: fast\n",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    first = outputs(cli, root, "environment/a")
    (root / "environments/a.yml").write_text("name: a\nenvironment_variables:\n  MODE: slow\n")
    plan = cli("plan", cwd=root)
    assert "~ environment/a  (environment_variables.MODE: value changed; version 1 → 2)" in plan.out
    applied = cli("apply", "--yes", cwd=root)
    assert "~ environment/a updated: reused an existing build" in applied.out
    second = outputs(cli, root, "environment/a")
    assert second["path"] == first["path"]
    assert second["variables"] == {"MODE": "(hidden)"}  # `state show` prints no value
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        recorded = store.recorded()["environment/a"]
    assert recorded.outputs["variables"] == {"MODE": "slow"}


def test_a_missing_virtualenv_is_no_change_and_a_run_rebuilds_it(
    cli: Cli, make_workspace: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(tmp_path / "own-cache"))
    pkg = slow_package(tmp_path / "ws" / "pkg")
    root = make_workspace(
        {
            "workspace.yml": "name: cache\n",
            "environments/e.yml": f"name: e\npip: ['{pkg}']\n",
            "runconfigs/train.yml": """
            name: train
            command: python -c "import slowpkg; print('slowpkg', slowpkg.VALUE)"
            environment: azureml:e@latest
        """,
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    path = Path(str(outputs(cli, root, "environment/e")["path"]))
    # A fresh CI runner: the state as committed, no cache.
    shutil.rmtree(tmp_path / "own-cache")
    plan = cli("plan", "--detailed-exitcode", cwd=root)
    assert (plan.code, plan.err) == (0, "")
    applied = cli("apply", "--yes", "--rerun", "train", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    lines = [line.strip() for line in applied.out.splitlines()]
    assert "runconfig/train: environment e:1 is not built on this machine yet" in lines
    building = f"runconfig/train: building virtual environment (1 package, {PYTHON}); "
    assert [line for line in lines if line.startswith(building)] == [
        building + "pip's output: .mlform/logs/runconfig-train.log"
    ]
    assert "runconfig/train: slowpkg 1" in lines
    assert (path / ".mlform-complete").is_file()
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0


AZURE_CONDA = """
name: sklearn-env
channels:
  - conda-forge
  - defaults
dependencies:
  - python=3.10
  - numpy=1.23
  - pip=23.3
  - scikit-learn==1.2.*
  - conda-forge::lightgbm=3.3
  - pip:
    - pandas~=1.5.3
    - {pkg}
"""


def test_an_azure_conda_file_pins_the_interpreter_and_translates_its_packages(
    cli: Cli, make_workspace: Make, tmp_path: Path
) -> None:
    from mlform.compute import interpreters
    from mlform.kinds.environment.kind import resolve_packages
    from mlform.kinds.environment.spec import EnvironmentSpec
    from mlform.loader import load

    if interpreters.find("3.10") is None and os.environ.get("CI") != "true":
        pytest.skip("no Python 3.10 here (pyenv install 3.10)")
    pkg = slow_package(tmp_path / "ws" / "pkg")
    root = make_workspace(
        {
            "workspace.yml": "name: conda\n",
            "environments/sklearn.yml": (
                "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
                "name: sklearn-env\n"
                "image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest\n"
                "conda_file: conda.yml\n"
            ),
            "environments/conda.yml": AZURE_CONDA.format(pkg="pandas==1.5.3"),
            "environments/small.yml": "name: small\nconda_file: small-conda.yml\n",
            "environments/small-conda.yml": (
                f"name: small\ndependencies:\n  - python=3.10\n  - pip\n  - pip:\n    - {pkg}\n"
            ),
        }
    )
    spec = load(root).specs["environment/sklearn-env"]
    assert isinstance(spec, EnvironmentSpec)
    packages = resolve_packages(spec)
    assert packages.lines == (
        "numpy==1.23.*",
        "scikit-learn==1.2.*",
        "lightgbm==3.3.*",
        "pandas~=1.5.3",
        "pandas==1.5.3",
    )
    assert (packages.python, packages.notes) == ("3.10", ())

    (root / "environments/sklearn.yml").unlink()
    (root / "environments/conda.yml").unlink()
    plan = cli("plan", cwd=root)
    assert planned(plan.out) == {
        "datastore/workspaceblobstore": "new: local folder .mlform/datastore",
        "environment/small": "new: version 1 (1 package, cpython-3.10)",
    }
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    python = str(outputs(cli, root, "environment/small")["python"])
    check = subprocess.run(
        [python, "-c", "import sys, slowpkg; print(sys.version_info[:2], slowpkg.VALUE)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.stdout.strip() == "(3, 10) 1"


def test_a_python_pin_with_no_interpreter_is_a_plan_error(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: nopython\n",
            "environments/old.yml": "name: old\nconda_file: conda.yml\n",
            "environments/conda.yml": "name: old\ndependencies:\n  - python=3.4\n  - pip\n",
        }
    )
    plan = cli("plan", cwd=root)
    assert plan.code == 1
    assert "Traceback" not in plan.out + plan.err
    assert (
        "environment/old (environments/old.yml:1): conda_file asks for python=3.4, and no "
        "Python 3.4 is on this machine (looked for python3.4 on PATH and in pyenv); "
    ) in plan.err


def test_an_image_only_environment_says_runs_need_docker(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: imageonly\n",
            "environments/gpu.yml": (
                "name: gpu\nimage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest\n"
            ),
            "environments/built.yml": "name: built\nbuild:\n  path: docker-context\n",
            "environments/docker-context/Dockerfile": "FROM python:3.11-slim\n",
            "runconfigs/train.yml": (
                "name: train\ncommand: python -V\nenvironment: azureml:gpu@latest\n"
            ),
        }
    )
    plan = cli("plan", cwd=root)
    assert planned(plan.out) == {
        "datastore/workspaceblobstore": "new: local folder .mlform/datastore",
        "environment/built": "new: version 1 (image only: runs need compute of type docker)",
        "environment/gpu": "new: version 1 (image only: runs need compute of type docker)",
        "runconfig/train": "no run yet",
    }
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 1
    assert "+ environment/gpu created: recorded (image only: runs need compute of type docker)" in (
        applied.out
    )
    assert (
        "  > runconfig/train failed: environment gpu:1 is only a Docker image (image only: runs "
        "need compute of type docker); add its packages (conda_file or pip) to run it locally\n"
    ) in applied.out
    assert "building virtual environment" not in applied.out


def test_independent_changes_run_in_parallel(
    cli: Cli, make_workspace: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "builds.log"
    monkeypatch.setenv("SLOW_SECONDS", "1.5")
    monkeypatch.setenv("SLOW_LOG", str(log))
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(tmp_path / "own-cache"))
    a, b = slow_package(tmp_path / "ws" / "a"), slow_package(tmp_path / "ws" / "b")
    root = make_workspace(
        {
            "workspace.yml": "name: parallel\n",
            "environments/a.yml": f"name: a\npip: ['{a}']\n",
            "environments/b.yml": f"name: b\npip: ['{b}']\n",
        }
    )
    assert cli("apply", "--yes", "--parallelism", "2", cwd=root).code == 0
    events = [line.split() for line in log.read_text().splitlines()]
    assert [kind for kind, _ in sorted(events, key=lambda e: float(e[1]))][:2] == [
        "start",
        "start",
    ]  # the second build started before the first ended


@pytest.mark.slow
def test_a_local_deployment_builds_a_missing_virtualenv_when_it_starts(
    cli: Cli, example_with_endpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.test_endpoints import FLOWERS, port_of, primary_key, request
    from tests.conftest import stop_endpoints

    monkeypatch.setenv("MLFORM_CACHE_DIR", str(tmp_path / "own-cache"))
    root = example_with_endpoint
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    # Another machine: the state as committed, no cache, nothing running.
    stop_endpoints(root)
    shutil.rmtree(tmp_path / "own-cache")
    plan = cli("plan", cwd=root)
    assert [line.split()[:2] for line in plan.out.splitlines() if line.startswith("  ~")] == [
        ["~", "endpoint/iris"]  # its server is not running: that is real
    ]
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    lines = [line.strip() for line in applied.out.splitlines()]
    assert "endpoint/iris: environment sklearn-env:1 is not built on this machine yet" in lines
    auth = {"Authorization": f"Bearer {primary_key(cli, root)}"}
    status, _, body = request(port_of(root), json.dumps(FLOWERS).encode(), auth)
    assert (status, body) == (200, b'["setosa","virginica"]')
