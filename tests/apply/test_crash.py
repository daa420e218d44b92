"""The example applied and SIGKILLed at random moments: across its environment build,
training, pipeline steps, model registration, image build and deployment. After each
kill one re-apply succeeds without a traceback, the plan it leaves is clean, nothing the
killed apply started is still running (unless the state knows it: a deployment), and no
version is lost or recorded twice, nor any stored file recorded half-written.

Each kill is a fresh copy of the example sharing the session's caches (environment
builds, Docker layers, downloaded wheels), so a cycle costs about one warm apply and a
plan; two of the kills remove the environment build first, to kill it half-way. Twelve
kills by default: the build twice and each other moment twice, in a new random order
with new delays each run (a longer run: MLFORM_CRASH_KILLS). The moments are drawn from
a seed, printed, so a failure reproduces:

    MLFORM_CRASH_SEED=1234 MLFORM_CRASH_KILLS=20 pytest tests/apply/test_crash.py -s

and MLFORM_CRASH_ONLY=7 runs only the seventh kill of that seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlform.state.store import Store
from tests.conftest import EXAMPLE, SWEEP, mlform_process, stop_endpoints
from tests.ports import free_port

KILLS = int(os.environ.get("MLFORM_CRASH_KILLS", "12"))
ONLY = int(os.environ.get("MLFORM_CRASH_ONLY", "0"))
MARK = "MLFORM_CRASH_MARK"  # in the killed apply's environment, and so its children's
PACKAGE = "scikit-learn==1.5.2"  # how the example's environment build is recognised


@dataclass(frozen=True, slots=True)
class Moment:
    phase: str
    after: str  # a line of the apply's progress output …
    within: float  # … and at most this many seconds after it


BUILD = Moment("environment build", "environment/sklearn-env: building virtual environment", 9.0)
BUILDS = 2  # kills in the environment build: each costs two builds (about 25s)
MOMENTS = (
    Moment("training", "runconfig/train: run train_", 2.0),
    Moment("pipeline step", "pipeline/retrain: step evaluate: running", 1.5),
    Moment("registration", "runconfig/train: accuracy ", 0.5),
    Moment("image build", "image/iris-scorer: building", 1.0),
    Moment("deployment", "endpoint/iris: deployment blue: started pid", 2.5),
)


@dataclass(frozen=True, slots=True)
class Cycle:
    number: int
    moment: Moment
    delay: float
    seed: int

    def __str__(self) -> str:
        return (
            f"seed {self.seed}, kill {self.number}: {self.moment.phase}, "
            f"{self.delay:.2f}s after {self.moment.after!r}"
        )


def test_an_apply_killed_at_random_moments_is_finished_by_one_more_apply(
    tmp_path: Path, env_cache: Path
) -> None:
    engine_or_skip()
    seed = int(os.environ.get("MLFORM_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\ncrash test: seed {seed} (MLFORM_CRASH_SEED), {KILLS} kills")
    rng = random.Random(seed)
    builds = min(BUILDS, KILLS // 5)
    schedule = [BUILD] * builds + [MOMENTS[i % len(MOMENTS)] for i in range(KILLS - builds)]
    rng.shuffle(schedule)
    started = time.monotonic()
    killed = reapplied = 0
    for number, moment in enumerate(schedule, 1):
        cycle = Cycle(number, moment, rng.uniform(0, moment.within), seed)
        if ONLY and number != ONLY:
            continue
        killed += run_cycle(cycle, tmp_path / f"kill{number:02}", env_cache)
        reapplied += 1
    took = time.monotonic() - started
    print(f"crash test: {killed} kills, {reapplied} re-applies, {took:.0f}s (seed {seed})")
    # a cycle whose apply ended before its moment killed nothing: that must stay rare
    # (a replay of one cycle, MLFORM_CRASH_ONLY, may be such a cycle)
    if not ONLY:
        assert killed >= reapplied * 0.8, (
            f"only {killed} of {KILLS} applies were killed (seed {seed})"
        )


def run_cycle(cycle: Cycle, folder: Path, cache: Path) -> bool:
    """One kill and its re-apply, checked; whether the apply was still running."""
    root = copy_example(folder)
    if cycle.moment is BUILD:
        forget_build(cache / "envs")
    mark = f"{cycle.seed}-{cycle.number}-{os.getpid()}"
    try:
        began = time.monotonic()
        proc = mlform_process("apply", "--yes", cwd=root, env={MARK: mark}, start_new_session=True)
        with proc:  # its pipes closed and it reaped, however this cycle ends
            seen = wait_for(proc, cycle.moment.after)
            if seen:
                time.sleep(cycle.delay)
            # An apply that ended in the delay is reaped by poll(): its pid may be gone.
            # One that is not reaped yet can still be signalled, even if it just exited.
            running = proc.poll() is None
            if running:
                os.kill(proc.pid, signal.SIGKILL)  # the apply alone, as `kill -9 PID` does
            out, err = proc.communicate()
        killed_after = time.monotonic() - began
        again = mlform_process("apply", "--yes", cwd=root)
        out, err = again.communicate(timeout=900)
        print(
            f"  {cycle}: {'killed' if running else 'had ended'} at {killed_after:.1f}s, "
            f"re-applied in {time.monotonic() - began - killed_after:.1f}s"
        )
        said = f"({cycle})\n{out}{err}"
        assert again.returncode == 0, said
        assert "Traceback" not in out + err, said
        plan = mlform_process("plan", "--detailed-exitcode", cwd=root)
        out, err = plan.communicate(timeout=300)
        assert plan.returncode == 0, f"({cycle})\n{out}{err}"
        assert [describe(pid) for pid in left_running(root, mark)] == [], f"({cycle})"
        assert versions(root) == EXPECTED, f"({cycle})"
        check_stored(root, cycle)
    finally:
        stop_endpoints(root)
        for pid in left_running(root, mark):  # so one failure does not leak into the next
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
    return running


# A fresh example registers each model once, builds its image once, and so on, however
# often it is killed on the way: anything more is a duplicate, anything less a loss.
EXPECTED = {
    "models": [("iris-classifier", "1"), ("iris-pipeline", "1")],
    "assets": [("data", "iris", "1"), ("environment", "sklearn-env", "1")],
    "images": [("iris-scorer", "1")],
    "serving": [("iris", "blue")],
}


def versions(root: Path) -> dict[str, list[tuple[str, ...]]]:
    with Store.open(root / ".mlform" / "state.duckdb", "crash test", write=False) as store:
        return {
            "models": store.query("select name, version from models order by all"),
            "assets": store.query("select kind, name, version from asset_versions order by all"),
            "images": store.query("select name, version from images order by all"),
            "serving": store.query(
                "select endpoint, name from deployments where status = 'running' order by all"
            ),
        }


def check_stored(root: Path, cycle: Cycle) -> None:
    """Every file the state records is in the datastore, whole: what a kill cut short
    was never recorded."""
    store_root = root / ".mlform" / "datastore"
    with Store.open(root / ".mlform" / "state.duckdb", "crash test", write=False) as store:
        files = [f for (row,) in store.query("select files from models") for f in json.loads(row)]
        manifests = store.query("select manifest from asset_versions where kind = 'data'")
        files += [f for (row,) in manifests for f in json.loads(row)]
        snapshots = [key for (key,) in store.query("select key from snapshots")]
    assert files and snapshots, f"({cycle}) nothing recorded"
    for entry in files:
        sha = entry["sha256"]
        blob = store_root / "blobs" / "sha256" / sha[:2] / sha
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha, f"({cycle}) {blob}"
    for key in snapshots:
        with zipfile.ZipFile(store_root / key) as archive:
            assert archive.testzip() is None, f"({cycle}) {key}"


def left_running(root: Path, mark: str) -> list[int]:
    """Processes the killed apply started that still run: those carrying its mark (all
    but servers, which mlform starts with an environment of their own), and processes
    working in the workspace that the state does not know as its router or a deployment."""
    known = serving_pids(root)
    found: dict[int, tuple[int, bool]] = {}  # pid → (parent, suspect)
    inside = str(root.resolve()) + os.sep
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (entry / "environ").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd") + os.sep
        except OSError:
            continue
        if fields[0] == "Z":
            continue
        marked = f"{MARK}={mark}".encode() in environ
        found[int(entry.name)] = (int(fields[1]), marked or cwd.startswith(inside))
    # a known server's own workers are known too
    grew = True
    while grew:
        more = {pid for pid, (parent, _) in found.items() if parent in known} - known
        grew = bool(more)
        known |= more
    return sorted(pid for pid, (_, suspect) in found.items() if suspect and pid not in known)


def describe(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} in {cwd}: {cmdline.strip()}"


def serving_pids(root: Path) -> set[int]:
    pids = set()
    for record in (root / ".mlform" / "endpoints").glob("*/router.json"):
        pids.add(int(json.loads(record.read_text())["pid"]))
    if not (root / ".mlform" / "state.duckdb").exists():
        return pids
    with Store.open(root / ".mlform" / "state.duckdb", "crash test", write=False) as store:
        rows = store.query("select handle from deployments where status = 'running'")
    pids |= {int(handle.partition("@")[0]) for (handle,) in rows}
    return pids


def wait_for(proc: subprocess.Popen[str], line: str) -> bool:
    """Read the apply's output until `line` appears; False if the apply ended first."""
    assert proc.stdout is not None
    return any(line in seen for seen in proc.stdout)


def copy_example(folder: Path) -> Path:
    root = folder / "iris"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlform", SWEEP))
    spec = root / "endpoints" / "iris.yml"
    spec.write_text(spec.read_text().replace("port: 5080", f"port: {free_port()}"))
    return root


def forget_build(envs: Path) -> None:
    """Remove the example's environment from the cache, so the next apply builds it."""
    for path in envs.glob("*"):
        try:
            done = json.loads((path / ".mlform-complete").read_text())
        except (OSError, ValueError):
            continue
        if PACKAGE in done["packages"]:
            built = path.resolve()
            if path.is_symlink():
                path.unlink()
            shutil.rmtree(built, ignore_errors=True)


def engine_or_skip() -> None:
    from mlform.containers.engine import connect
    from mlform.errors import EngineUnavailable

    try:
        connect().close()
    except EngineUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{err} (CI must provide a Docker engine)")
        pytest.skip(str(err))
