"""The machine's end of an SSH run (`sshagent`), driven through its frames by the apply's
end (`ssh._Frames`) over the pipes of a real process: what the session carries is the
same, without the encryption around it. Large files cross in pieces; a session that ends
first stops the whole run there; what a run leaves running when it ends is stopped."""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlform.compute import Launch
from mlform.containers import wheels
from mlform.kinds.compute import ssh, sshagent


class _Pipes:
    """The part of a paramiko channel the frames use, over a process's pipes."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.timeout = 0.0

    def settimeout(self, timeout: float) -> None:
        self.timeout = timeout

    def recv(self, size: int) -> bytes:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
        if not ready:
            raise TimeoutError
        return os.read(self.process.stdout.fileno(), size)

    def recv_stderr(self, size: int) -> bytes:
        assert self.process.stderr is not None
        return os.read(self.process.stderr.fileno(), size)

    def sendall(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def close(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[ssh._Frames, subprocess.Popen[bytes], Path]]:
    """The agent as a process of its own, its home in `tmp_path/home`."""
    home = tmp_path / "home"
    home.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", Path(sshagent.__file__).read_text(), wheels.PROBE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HOME": str(home)},
    )
    frames = ssh._Frames(_Pipes(process))  # type: ignore[arg-type]
    try:
        yield frames, process, home
    finally:
        frames.close()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(10)
        for pipe in (process.stdout, process.stderr):
            assert pipe is not None
            pipe.close()


def _launch(tmp_path: Path) -> Launch:
    run_dir = tmp_path / "here" / "run"
    (run_dir / "logs").mkdir(parents=True)
    return Launch("", tmp_path, {}, run_dir / "logs" / "std_log.txt", secrets=("hush-427",))


def _start(frames: ssh._Frames, launch: Launch, folder: Path, command: str) -> int:
    frames.send({"files": [], "links": [], "folders": [str(folder)]})
    assert frames.expect("missing")["missing"] == []
    frames.expect("placed")
    frames.follow(launch)
    frames.send(
        {
            "start": {
                "folder": str(folder),
                "command": command,
                "secrets": "",
                "followed": ["logs/std_log.txt", "metrics.csv"],
                "sent": ["snapshot"],
            }
        }
    )
    return int(str(frames.expect("started")["started"]))


def _alive(group: int) -> bool:
    """Whether a process of `group` runs (an ended one waiting for init to reap it does
    not: this machine's init reaps slowly)."""
    listed = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True)
    return any(
        int(pgid) == group and not stat.startswith("Z")
        for pgid, stat in (line.split() for line in listed.stdout.splitlines())
    )


def test_files_go_by_content_and_large_ones_come_back_whole(
    agent: tuple[ssh._Frames, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    frames, _, home = agent
    said = frames.expect("home")
    assert said["home"] == str(home / ".mlform")
    assert said["python"]["python"] == f"{sys.version_info[0]}.{sys.version_info[1]}"  # type: ignore[index]

    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(300_000))
    there = tmp_path / "there" / "snapshot" / "a" / "copy.bin"
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    for expected_missing in ([sha], []):  # the second time the machine has the blob
        frames.send({"files": [[sha, str(there)]], "links": [], "folders": []})
        missing = frames.expect("missing")["missing"]
        assert missing == expected_missing
        for blob in missing:  # type: ignore[attr-defined]
            ssh._send_blob(frames, blob, local)
        assert frames.expect("placed")["placed"] == 1
    assert there.read_bytes() == local.read_bytes()
    assert there.stat().st_ino == (home / ".mlform" / "blobs" / sha).stat().st_ino

    launch = _launch(tmp_path)
    folder = tmp_path / "there"
    script = (
        "import os, sys\n"
        "sys.stdout.write('line with hush-427 in it\\n' + 'x' * 2_000_000 + '\\n')\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/big.bin', 'wb').write(bytes(range(256)) * 12_000)\n"
        "open('metrics.csv', 'w').write('key,value\\nloss,1\\n')\n"
    )
    _start(frames, launch, folder, f'cd {folder} && {sys.executable} -c "{script}"')
    deadline = time.monotonic() + 60
    while (code := frames.pump(0.5)) is None:
        assert time.monotonic() < deadline
    assert code == 0
    run_dir = launch.log.parent.parent
    assert (run_dir / "outputs" / "big.bin").read_bytes() == bytes(range(256)) * 12_000
    log = launch.log.read_text()
    assert log.startswith("line with *** in it\n") and len(log) > 2_000_000
    assert (run_dir / "metrics.csv").read_text() == "key,value\nloss,1\n"
    assert not (run_dir / "snapshot").exists()  # what was sent is not brought back


def test_a_session_that_ends_first_stops_the_whole_run(
    agent: tuple[ssh._Frames, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    frames, process, _ = agent
    frames.expect("home")
    folder = tmp_path / "there"
    pid = _start(frames, _launch(tmp_path), folder, "sleep 617 & exec sleep 618")
    assert _alive(pid)
    frames.close()  # the connection drops
    process.wait(sshagent.GRACE + 10)
    deadline = time.monotonic() + sshagent.GRACE + 5
    while _alive(pid):
        assert time.monotonic() < deadline, "the run's group outlived its session"
        time.sleep(0.1)


def test_a_stop_ends_the_group_even_when_it_ignores_sigterm(
    agent: tuple[ssh._Frames, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    frames, _, _ = agent
    frames.expect("home")
    folder = tmp_path / "there"
    launch = _launch(tmp_path)
    pid = _start(frames, launch, folder, "trap '' TERM; sleep 620 & echo ready; wait")
    deadline = time.monotonic() + 30
    while not (launch.log.exists() and "ready" in launch.log.read_text()):  # SIGTERM ignored
        assert frames.pump(0.2) is None and time.monotonic() < deadline
    frames.send({"stop": True})
    started = time.monotonic()
    while (code := frames.pump(0.5)) is None:
        assert time.monotonic() - started < sshagent.GRACE + 10
    assert code == -9 and time.monotonic() - started >= sshagent.GRACE - 0.5  # SIGKILL, late
    assert not _alive(pid)


def test_what_a_run_leaves_running_ends_with_it(
    agent: tuple[ssh._Frames, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    frames, _, _ = agent
    frames.expect("home")
    folder = tmp_path / "there"
    pid = _start(frames, _launch(tmp_path), folder, "sleep 619 & echo started")
    deadline = time.monotonic() + 30
    while (code := frames.pump(0.5)) is None:
        assert time.monotonic() < deadline
    assert code == 0
    assert not _alive(pid)  # the sleep it left behind was stopped as it ended
