"""Process groups mlform starts: recorded while they run, stopped by the next apply once
the mlform that started them is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from mlform.compute import Launch, groups
from mlform.compute.local import LocalTarget

# An mlform stand-in: starts what it is told the way mlform does, says the pids, waits.
OWNER = """
import subprocess, sys, time
from mlform.compute import groups
how = sys.argv[1]
if how == "recorded":
    process, group = groups.popen(["sh", "-c", "sleep 600 & echo $!; exec sleep 600"],
                                  what="sleepers", stdout=subprocess.PIPE, text=True)
    print(process.pid, process.stdout.readline().strip(), flush=True)
else:  # killed after the record was written, before it named the group
    group = groups.Group("unnamed sleeper")
    process = subprocess.Popen(["sleep", "600"], env=group.env(None), start_new_session=True)
    print(process.pid, flush=True)
time.sleep(600)
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


class Started(list[int]):
    """Pids a test started, each with its start time as it is added: the cleanup stops
    exactly those processes, never another that has since been given a pid they freed."""

    def __init__(self) -> None:
        super().__init__()
        self.times: dict[int, int | None] = {}

    def append(self, pid: int) -> None:
        self.times[pid] = groups.start_time(pid)
        super().append(pid)

    def extend(self, pids: Iterable[int]) -> None:
        for pid in pids:
            self.append(pid)


@pytest.fixture
def started() -> Iterator[Started]:
    """Pids to SIGKILL after the test, whatever it left."""
    pids = Started()
    yield pids
    for pid, began in pids.times.items():
        if began is not None:
            groups._kill(groups.Seen(pid, pid, began, None))


def owner(how: str, started: Started) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen([sys.executable, "-c", OWNER, how], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    with proc.stdout:
        pids = [int(pid) for pid in proc.stdout.readline().split()]
    started.extend([proc.pid, *pids])
    return proc, pids


def alive(pid: int) -> bool:
    stat = groups._stat(pid)
    return stat is not None and stat[0] not in (b"Z", b"X")


def gone(pid: int) -> bool:
    """Whether `pid` dies: a SIGKILLed process still has to be scheduled to end."""
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(pid)


def test_a_group_whose_mlform_was_killed_is_stopped_whole(cache: Path, started: Started) -> None:
    proc, pids = owner("recorded", started)
    (record,) = (cache / "processes").glob("*.json")
    data = json.loads(record.read_text())
    assert (data["what"], data["pgid"], data["owner"][0]) == ("sleepers", pids[0], proc.pid)
    assert groups.reap() == []  # its mlform still runs: not an orphan
    assert all(alive(pid) for pid in pids)

    proc.kill()
    proc.wait()
    assert all(alive(pid) for pid in pids)  # a session of its own: the kill left it
    assert groups.reap() == ["sleepers"]
    assert not any(alive(pid) for pid in pids)  # the leader and what it started
    assert list((cache / "processes").iterdir()) == []
    assert groups.reap() == []


def test_a_process_started_before_its_group_was_recorded_is_found_by_its_token(
    cache: Path, started: Started
) -> None:
    proc, (pid,) = owner("unnamed", started)
    proc.kill()
    proc.wait()
    assert alive(pid)
    assert groups.reap() == ["unnamed sleeper"]
    assert not alive(pid)


def test_a_group_id_given_to_another_process_is_left_alone(cache: Path, started: Started) -> None:
    other = subprocess.Popen(["sleep", "600"], start_new_session=True)
    started.append(other.pid)
    real = groups.start_time(other.pid)
    assert real is not None
    (cache / "processes").mkdir(parents=True)
    record = {
        "what": "an old group",
        "owner": [other.pid, real - 1],  # an mlform long gone
        "token": "0123456789abcdef",
        "pgid": other.pid,
        "started": real - 1,  # its leader started earlier: this pid is someone else's now
    }
    (cache / "processes" / "0123456789abcdef.json").write_text(json.dumps(record))
    assert groups.reap() == ["an old group"]
    assert alive(other.pid)
    other.kill()
    other.wait()


def test_what_a_run_leaves_running_when_it_ends_is_stopped_with_it(
    cache: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "background.pid"
    launch = Launch(
        command=f"sleep 600 & echo $! > {pidfile}; echo done",
        cwd=tmp_path,
        env=dict(os.environ),
        log=tmp_path / "logs" / "std_log.txt",
    )
    handle = LocalTarget().start(launch)
    assert len(list((cache / "processes").glob("*.json"))) == 1
    deadline = time.monotonic() + 30
    while (code := handle.poll()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert code == 0
    background = int(pidfile.read_text())
    assert gone(background)
    assert list((cache / "processes").glob("*.json")) == []


def test_a_download_killed_with_its_apply_is_recorded_for_the_next_one(
    cache: Path, started: Started, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        """
        import sys
        from mlform.compute import groups
        with groups.running([sys.executable, "-c", "import time; time.sleep(600)"],
                            what="pip download for cp311") as (process, group):
            print(process.pid, flush=True)
            process.wait()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    with proc.stdout:
        pid = int(proc.stdout.readline())
    started.extend([proc.pid, pid])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert alive(pid)
    assert groups.reap() == ["pip download for cp311"]
    assert not alive(pid)
