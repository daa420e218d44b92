"""Applies that run at the same time, and applies that are killed: the state stays whole."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from mlform.compute import groups
from tests.conftest import Ran, mlform_process

Cli = Callable[..., Ran]

# A package whose build takes as long as SLOW_SECONDS says: an in-tree PEP 517 backend,
# so pip builds it offline and the test controls exactly how long an apply is busy.
BACKEND = """
import base64, hashlib, os, sys, time, zipfile

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    log = os.environ.get("SLOW_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"start {time.time()}\\n")
    until = time.time() + float(os.environ.get("SLOW_SECONDS", "0"))
    written = 0
    while time.time() < until:
        if os.environ.get("SLOW_LITTER"):  # as pip unpacking a large package would
            folder = os.path.join(sys.prefix, "lib", f"litter{written % 20}")
            os.makedirs(folder, exist_ok=True)
            open(os.path.join(folder, str(written)), "w").close()
            written += 1
        time.sleep(0.001)
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
        # A reader is not held up: it sees what the apply has committed so far.
        plan = cli("plan", cwd=root)
        assert (plan.code, plan.err) == (0, "")
        assert "+ environment/slow" in plan.out
        assert first.poll() is None  # answered while the apply still runs
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
        groups.reap()  # its pip, in a session of its own, is stopped as an apply would


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


def test_killed_environment_build_leaves_nothing_half_built_and_its_pip_is_stopped(
    cli: Cli,
    make_workspace: Callable[[Mapping[str, str]], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(cache))
    root = workspace(make_workspace, 0, tmp_path)
    proc = mlform_process(
        "apply",
        "--yes",
        cwd=root,
        env={"SLOW_SECONDS": "120", "SLOW_LITTER": "1", "MLFORM_CACHE_DIR": str(cache)},
        start_new_session=True,
    )
    wait_for_line(proc, "building virtual environment")
    litter = wait_for_litter(cache / "envs")
    os.kill(proc.pid, signal.SIGKILL)  # the apply alone, as `kill -9 PID` does
    proc.communicate()
    before = len(list(litter.rglob("*")))
    time.sleep(0.2)
    assert len(list(litter.rglob("*"))) > before, "pip no longer runs: nothing to test"
    assert not any((p / ".mlform-complete").exists() for p in (cache / "envs").iterdir())

    plan = cli("plan", cwd=root)
    assert "+ environment/slow  (new: version 1 (1 package, cpython-3.11))" in plan.out

    done = cli("apply", "--yes", cwd=root)  # at once, while the orphaned pip writes
    assert done.code == 0, done.out + done.err
    assert "Traceback" not in done.out + done.err
    assert (
        "warning: pip for environment/slow was left running by an mlform that ended "
        "without finishing: stopped\n" in done.err
    )
    attempt = litter.parent.parent
    assert naming(str(attempt)) == []  # no process of the killed build is left
    count = len(list(litter.rglob("*"))) if litter.exists() else 0
    time.sleep(0.2)
    assert (len(list(litter.rglob("*"))) if litter.exists() else 0) == count
    shown = json.loads(cli("state", "show", "environment/slow", cwd=root).out)
    python = shown["outputs"]["python"]
    check = subprocess.run(
        [python, "-c", "import slowpkg; print(slowpkg.VALUE)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.stdout.strip() == "1"
    # the build that finished is the only one kept: the killed attempt is gone
    built = Path(shown["outputs"]["path"])
    kept = sorted(p.name for p in (cache / "envs").iterdir() if p.is_dir())
    assert kept == sorted([built.name, os.readlink(built)])
    assert not litter.exists()


def wait_for_litter(envs: Path) -> Path:
    """The folder a build's pip writes into, once it has started writing."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(envs.glob("*/lib/litter0"))
        if found:
            return found[0].parent
        time.sleep(0.05)
    raise AssertionError(f"pip never wrote into {envs}")


def naming(text: str) -> list[int]:
    """The live processes whose command line names `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if status != "Z" and text in cmdline:
            found.append(int(entry.name))
    return found


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
    named = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert [p.name for p in named] == [p.name for p in named if (p / ".mlform-complete").exists()]
    # the failed build's folder is gone: what is left is what the names point to
    built = [p.name for p in cache.iterdir() if p.is_dir() and not p.is_symlink()]
    assert built == [os.readlink(p) for p in named]
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
    envs = tmp_path / "cache" / "envs"
    assert not any(p.is_dir() and not (p / ".mlform-complete").exists() for p in envs.iterdir())


def test_an_apply_killed_while_storing_a_file_records_no_half_written_blob(
    cli: Cli, shm_workspace: Path
) -> None:
    root = shm_workspace
    (root / "data").mkdir(parents=True)
    (root / "workspace.yml").write_text("name: big\n")
    (root / "data" / "big.yml").write_text(BIG)
    block = os.urandom(1 << 20)
    with (root / "data" / "big.bin").open("wb") as out:
        for _ in range(512):
            out.write(block)
    proc = mlform_process("apply", "--yes", cwd=root, start_new_session=True)
    store = root / ".mlform" / "datastore"
    deadline = time.monotonic() + 300
    while not [p for p in store.rglob("*") if p.is_file()] and time.monotonic() < deadline:
        assert proc.poll() is None, "the apply ended before it was seen storing the file"
        time.sleep(0.001)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()

    blobs = root / ".mlform" / "datastore" / "blobs" / "sha256"
    named = [p for p in blobs.rglob("*") if p.is_file() and not p.name.startswith(".")]
    plan = cli("plan", cwd=root)
    assert "+ data/big" in plan.out  # nothing recorded it
    for blob in named:  # a blob under its final name is whole, whatever the moment
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name

    done = cli("apply", "--yes", cwd=root)
    assert done.code == 0, done.out + done.err
    shown = json.loads(cli("data", "show", "big", "--json", cwd=root).out)
    (entry,) = shown["manifest"]
    kept = blobs / entry["sha256"][:2] / entry["sha256"]
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == entry["sha256"]
    assert kept.stat().st_size == 512 << 20


BIG = "name: big\ntype: uri_file\npath: big.bin\n"


@pytest.fixture
def shm_workspace(tmp_path: Path) -> Iterator[Path]:
    """A workspace in memory (tmpfs) when the machine has one: there a copy is a real
    copy, never a reflink made at once, so an apply can be caught storing a file."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path / "ws"
        return
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        yield Path(folder) / "ws"
