"""Environments: packages from pip lines, requirements and conda files; builds shared."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.apply.test_interrupted import slow_package
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def outputs(cli: Cli, root: Path, address: str) -> dict[str, object]:
    shown = json.loads(cli("state", "show", address, cwd=root).out)
    return dict(shown["outputs"])


def test_requirements_and_conda_pip_sections_are_installed(
    cli: Cli, make_workspace: Make, tmp_path: Path
) -> None:
    one = slow_package(tmp_path / "one")
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
    assert (
        "~ environment/a  (environment_variables.MODE: 'fast' → 'slow'; version 1 → 2)" in plan.out
    )
    applied = cli("apply", "--yes", cwd=root)
    assert "~ environment/a updated: reused an existing build" in applied.out
    second = outputs(cli, root, "environment/a")
    assert second["path"] == first["path"]
    assert second["variables"] == {"MODE": "slow"}


def test_missing_virtualenv_is_drift_and_apply_rebuilds(
    cli: Cli, make_workspace: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(tmp_path / "own-cache"))
    root = make_workspace({"workspace.yml": "name: drift\n", "environments/e.yml": "name: e\n"})
    assert cli("apply", "--yes", cwd=root).code == 0
    path = Path(str(outputs(cli, root, "environment/e")["path"]))
    (path / ".mlform-complete").unlink()
    plan = cli("plan", "--detailed-exitcode", cwd=root)
    assert plan.code == 2
    assert f"~ environment/e  (virtual environment {path.name} missing from the cache)" in plan.out
    assert cli("apply", "--yes", cwd=root).code == 0
    assert (path / ".mlform-complete").is_file()
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0


def test_independent_changes_run_in_parallel(
    cli: Cli, make_workspace: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "builds.log"
    monkeypatch.setenv("SLOW_SECONDS", "1.5")
    monkeypatch.setenv("SLOW_LOG", str(log))
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(tmp_path / "own-cache"))
    a, b = slow_package(tmp_path / "a"), slow_package(tmp_path / "b")
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
