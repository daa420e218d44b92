"""Local instances as processes: known by pid and start time, not by a read of their
environment that a fresh process does not have yet."""

from __future__ import annotations

import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlform.cachedir import cache_dir
from mlform.kinds.endpoint import local
from mlform.kinds.endpoint.instances import Launch
from mlform.kinds.endpoint.local import Process
from mlform.kinds.image.kind import runtime_folder
from tests.ports import free_port
from tests.serving.conftest import call

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
TALKING_SLEEPER = [
    sys.executable,
    "-c",
    "import time; print('sleeping', flush=True); time.sleep(60)",
]


@pytest.fixture
def spawned() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        local.terminate(process)


def test_every_fresh_spawn_reads_as_running(tmp_path: Path, spawned: list[Process]) -> None:
    # /proc/<pid>/environ reads empty for about a millisecond after a spawn: a check on it
    # called most of these dead.
    env = {"PATH": os.defpath, "MLFORM_INSTANCE": "x"}
    for i in range(200):
        process = local.spawn(["sleep", "60"], env, tmp_path / "log", cwd=tmp_path)
        spawned.append(process)
        assert process.running(), f"spawn {i} (pid {process.pid}) read as not running"
        os.killpg(process.pid, signal.SIGKILL)
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        assert not process.running()
        spawned.pop()


def test_a_reused_pid_with_another_start_time_is_not_running(
    tmp_path: Path, spawned: list[Process]
) -> None:
    process = local.spawn(SLEEPER, {"PATH": os.defpath}, tmp_path / "log", cwd=tmp_path)
    spawned.append(process)
    assert process.started is not None
    assert process.running()
    # The same pid, started at another time: another program that got the number.
    other = Process(process.pid, process.started + 1)
    assert not other.running()
    local.terminate(other)  # stops nothing: not ours
    assert process.running()


def test_a_handle_keeps_pid_and_start_time(tmp_path: Path, spawned: list[Process]) -> None:
    process = local.spawn(SLEEPER, {"PATH": os.defpath}, tmp_path / "log", cwd=tmp_path)
    spawned.append(process)
    assert process.handle == f"{process.pid}@{process.started}"
    assert Process.parse(process.handle) == process
    assert Process.parse("123") == Process(123, None)


def test_an_old_record_without_start_time_is_known_by_its_instance(
    tmp_path: Path, spawned: list[Process]
) -> None:
    env = {"PATH": os.defpath, "MLFORM_INSTANCE": "abc123"}
    log = tmp_path / "log"
    process = local.spawn(TALKING_SLEEPER, env, log, cwd=tmp_path)
    spawned.append(process)
    # An old record's process has long been running: wait until the program itself runs
    # (it says so). Before, the shell that becomes it has the same environment, and for a
    # moment while it execs the program, /proc shows none; the deadline bounds a hang.
    deadline = time.monotonic() + 30
    while "sleeping" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Process(process.pid, None, "abc123").running(), described(process)
    assert not Process(process.pid, None, "another").running()


def described(process: Process) -> str:
    """What /proc shows of a process that did not read as running, for the failure."""
    try:
        stat = Path(f"/proc/{process.pid}/stat").read_text(errors="replace")
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
    except OSError as error:
        return f"pid {process.pid}: {error}; exit {process.exit_code()}"
    return f"pid {process.pid}: {stat!r}, environment {environ!r}"


def test_an_ended_process_tells_its_exit_code(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "raise SystemExit(3)"]
    process = local.spawn(argv, {"PATH": os.defpath}, tmp_path / "log", cwd=tmp_path)
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # ended, not yet reaped
    assert not process.running()
    assert process.exit_code() == 3


def test_a_killed_process_tells_the_signal(tmp_path: Path) -> None:
    process = local.spawn(SLEEPER, {"PATH": os.defpath}, tmp_path / "log", cwd=tmp_path)
    os.killpg(process.pid, signal.SIGKILL)
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    assert not process.running()
    assert process.exit_code() == -signal.SIGKILL


def test_a_servers_log_is_its_owners_only(tmp_path: Path, spawned: list[Process]) -> None:
    before = os.umask(0)
    try:
        spawned.append(local.spawn(SLEEPER, {"PATH": os.defpath}, tmp_path / "log", cwd=tmp_path))
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "log").stat().st_mode) == 0o600


SECRET = "tok-5f3a9c1e77b2"

# The secret printed in two halves a flush apart in init(), logged in run(), and written
# by a subprocess straight to file descriptor 1.
SCORE_PY = """
import logging
import os
import subprocess
import sys
import time

v = os.environ["API_TOKEN"]


def init():
    print("init: " + v[:5], end="", flush=True)
    time.sleep(0.2)
    print(v[5:], flush=True)


def run(raw):
    logging.getLogger("score").warning("calling the API with %s", v)
    child = "import os; os.write(1, b'child: ' + os.environb[b'API_TOKEN'] + b'\\\\n')"
    subprocess.run([sys.executable, "-c", child], check=True)
    return [1]
"""


def test_a_deployments_log_shows_its_secrets_as_stars(tmp_path: Path) -> None:
    code, model = tmp_path / "code", tmp_path / "model"
    code.mkdir()
    model.mkdir()
    (code / "score.py").write_text(SCORE_PY, encoding="utf-8")
    launch = Launch(
        endpoint="iris",
        deployment="blue",
        instance="a1b2",
        digest="0" * 64,
        model="iris:1",
        folder=tmp_path / "instance",
        code=code,
        script="score.py",
        model_dir=model,
        environment="iris-env:1",
        python=Path(sys.executable),
        runtime=runtime_folder(cache_dir()),
        variables={"API_TOKEN": SECRET, "API_URL": f"https://api.example.com/?key={SECRET}"},
        secrets=(SECRET,),
    )
    assert launch.server_environment()["MLFORM_SECRET_VARIABLES"] == "API_TOKEN,API_URL[29:45]"
    target = local.LocalTarget()
    port = free_port()
    instance = target.start(launch, port, lambda message: None)
    local.recorded(local.Process.parse(instance.handle).pid)
    try:
        deadline = time.monotonic() + 60  # bounds a hang; the server starts in a second
        while not ready(port) and time.monotonic() < deadline:
            assert target.alive(instance), Path(instance.log).read_text()
            time.sleep(0.05)
        scored = call(port, "POST", "/score", b'{"data": [1]}')
    finally:
        target.stop(instance)
    assert (scored.status, scored.body) == (200, b"[1]")
    log = Path(instance.log).read_text()
    assert "init: ***\n" in log
    assert "calling the API with ***\n" in log
    assert "child: ***\n" in log
    assert SECRET[:5] not in log and SECRET[5:] not in log


def ready(port: int) -> bool:
    try:
        return call(port, "GET", "/ready").status == 200
    except OSError:
        return False
