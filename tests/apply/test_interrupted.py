"""Applies that run at the same time, and applies that are killed: the state stays whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import Ran, mlform_process

Cli = Callable[..., Ran]

# A package whose build takes as long as SLOW_SECONDS says: an in-tree PEP 517 backend,
# so pip builds it offline and the test controls exactly how long an apply is busy.
BACKEND = """
import base64, hashlib, os, time, zipfile

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    log = os.environ.get("SLOW_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"start {time.time()}\\n")
    time.sleep(float(os.environ.get("SLOW_SECONDS", "0")))
    if log:
        with open(log, "a") as f:
            f.write(f"end {time.time()}\\n")
    name = "slowpkg-1.0-py3-none-any.whl"
    files = {
        "slowpkg.py": b"VALUE = 1\\n",
        "slowpkg-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\\nName: slowpkg\\nVersion: 1.0\\n"
        ),
        "slowpkg-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\n"
            b"Tag: py3-none-any\\n"
        ),
    }
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
        for path, data in files.items():
            whl.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append("slowpkg-1.0.dist-info/RECORD,,")
        whl.writestr("slowpkg-1.0.dist-info/RECORD", "\\n".join(record) + "\\n")
    return name
"""


def slow_package(root: Path) -> Path:
    pkg = root / "slowpkg"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "slowbackend.py").write_text(BACKEND)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "slowbackend"\nbackend-path = ["."]\n'
    )
    return pkg


def workspace(make: Callable[[Mapping[str, str]], Path], data_assets: int, tmp: Path) -> Path:
    pkg = slow_package(tmp / "ws")  # inside the workspace, as local packages must be
    files = {
        "workspace.yml": "name: interrupted\n",
        "environments/slow.yml": f"name: slow\npip:\n  - {pkg}\n",
    }
    for i in range(data_assets):
        files[f"data/d{i:03}.yml"] = f"name: d{i:03}\ntype: uri_file\npath: d{i:03}.csv\n"
        files[f"data/d{i:03}.csv"] = f"x,y\n{i},{i * i}\n"
    return make(files)


def wait_for_line(proc: subprocess.Popen[str], pattern: str, count: int = 1) -> list[str]:
    seen: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if sum(pattern in s for s in seen) >= count:
            return seen
    raise AssertionError(f"{pattern!r} never appeared; output was:\n{''.join(seen)}")


def test_second_apply_is_refused_naming_the_holder(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path
) -> None:
    root = workspace(make_workspace, 1, tmp_path)
    first = mlform_process(
        "apply", "--yes", cwd=root, env={"SLOW_SECONDS": "60"}, start_new_session=True
    )
    try:
        wait_for_line(first, "building virtual environment")
        second = cli("apply", "--yes", cwd=root)
        assert second.code == 1
        assert "error: the state is locked by `mlform apply` (lock ID " in second.err
        assert f"pid {first.pid} on " in second.err
        assert "run `mlform force-unlock " in second.err
        plan = cli("plan", cwd=root)  # plan needs a consistent state too
        assert plan.code == 1
        assert f"pid {first.pid}" in plan.err
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()


def test_killed_apply_is_continued_with_nothing_lost_or_duplicated(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path
) -> None:
    assets = 300
    root = workspace(make_workspace, assets, tmp_path)
    proc = mlform_process("apply", "--yes", "--parallelism", "1", cwd=root, start_new_session=True)
    seen = wait_for_line(proc, " created", count=100)
    assert proc.poll() is None, "the apply finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    created_before = sum(" created" in line for line in seen)

    resumed = cli("apply", "--yes", cwd=root)
    assert resumed.code == 0, resumed.out + resumed.err
    assert "warning: the previous apply (lock ID" in resumed.err
    assert "ended without finishing; this apply continues from what it recorded" in resumed.err
    created_after = resumed.out.count(" created")
    # every change recorded before the kill is done, at most one was in flight
    assert created_before + created_after in (assets + 2, assets + 3)

    listed = cli("data", "list", "--archived", cwd=root).out.splitlines()[1:]
    assert len(listed) == assets  # one version each: nothing lost, nothing twice
    assert {line.split()[1] for line in listed} == {"1"}
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0


def test_killed_environment_build_leaves_nothing_half_built(
    cli: Cli,
    make_workspace: Callable[[Mapping[str, str]], Path],
    tmp_path: Path,
    env_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(tmp_path / "cache"))
    root = workspace(make_workspace, 0, tmp_path)
    proc = mlform_process(
        "apply",
        "--yes",
        cwd=root,
        env={"SLOW_SECONDS": "60", "MLFORM_CACHE_DIR": str(tmp_path / "cache")},
        start_new_session=True,
    )
    wait_for_line(proc, "building virtual environment")
    time.sleep(1.0)  # let pip get going
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    envs = [p for p in (tmp_path / "cache" / "envs").iterdir() if not p.name.startswith(".")]
    assert envs and not any((p / ".mlform-complete").exists() for p in envs)

    plan = cli("plan", cwd=root)
    assert "+ environment/slow  (new: version 1 (1 package, cpython-3.11))" in plan.out

    done = cli("apply", "--yes", cwd=root)
    assert done.code == 0, done.out + done.err
    shown = json.loads(cli("state", "show", "environment/slow", cwd=root).out)
    python = shown["outputs"]["python"]
    check = subprocess.run(
        [python, "-c", "import slowpkg; print(slowpkg.VALUE)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.stdout.strip() == "1"


def test_pip_failure_reports_pips_error_and_leaves_no_environment(
    cli: Cli,
    make_workspace: Callable[[Mapping[str, str]], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(tmp_path / "cache"))
    root = make_workspace(
        {
            "workspace.yml": "name: broken\n",
            "environments/bad.yml": f"name: bad\npip:\n  - {tmp_path / 'ws' / 'no-such-project'}\n",
            "environments/good.yml": "name: good\nenvironment_variables:\n  A: 1\n",
            "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
            "data/x.csv": "a\n1\n",
        }
    )
    ran = cli("apply", "--yes", cwd=root)
    assert ran.code == 1
    assert "  + environment/bad failed: pip could not install the packages (exit 1):\n" in ran.out
    assert "  | ERROR: Invalid requirement: " in ran.out  # pip's own words
    assert "no-such-project" in ran.out
    assert "Apply failed: 3 succeeded, 1 failed, 0 skipped." in ran.out
    cache = tmp_path / "cache" / "envs"
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [
        p.name for p in cache.iterdir() if (p / ".mlform-complete").exists()
    ]
    plan = cli("plan", cwd=root)
    assert (
        "+ environment/bad  (last apply failed: pip could not install the "
        "packages (exit 1):)\n" in plan.out
    )
    assert "Plan: 1 to add, 0 to change, 0 to destroy, 0 to run." in plan.out


def test_failed_change_stops_only_its_dependents(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: deps\n",
            "environments/bad.yml": f"name: bad\npip:\n  - {tmp_path / 'ws' / 'missing'}\n",
            "data/after.yml": textwrap.dedent("""\
            name: after
            type: uri_file
            path: a.csv
            depends_on: [environment/bad]
        """),
            "data/a.csv": "a\n1\n",
            "data/free.yml": "name: free\ntype: uri_file\npath: a.csv\n",
        }
    )
    ran = cli("apply", "--yes", cwd=root)
    assert ran.code == 1
    assert "+ data/after skipped: environment/bad did not succeed" in ran.out
    assert "+ data/free created: version 1" in ran.out
    assert "Apply failed: 2 succeeded, 1 failed, 1 skipped." in ran.out
    assert "  skipped: data/after (environment/bad did not succeed)" in ran.out


def test_ctrl_c_stops_the_apply_and_keeps_the_state_consistent(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path
) -> None:
    root = workspace(make_workspace, 3, tmp_path)
    cache = str(tmp_path / "cache")
    proc = mlform_process(
        "apply",
        "--yes",
        cwd=root,
        env={"SLOW_SECONDS": "60", "MLFORM_CACHE_DIR": cache},
        start_new_session=True,
    )
    wait_for_line(proc, "building virtual environment")
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends its foreground group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "error: interrupted" in err
    assert "Traceback" not in err

    plan = cli("plan", cwd=root)
    assert plan.code == 0
    assert (
        "+ environment/slow  (last apply failed: interrupted while building; the partial "
        "build is removed)" in plan.out
    )
    assert "Plan: 1 to add, 0 to change, 0 to destroy, 0 to run. 4 unchanged." in plan.out
    assert not any(
        p.is_dir() and not (p / ".mlform-complete").exists()
        for p in (tmp_path / "cache" / "envs").iterdir()
        if not p.name.startswith(".")
    )
