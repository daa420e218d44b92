"""Instances as processes on this machine. Each is started in a session of its own,
detached from the apply that starts it, so it keeps serving after `mlform apply` returns;
its pid, port and log are recorded. A process is known by its pid and its start time
(recorded when it is spawned), so a pid the system has since given to another process
is not mistaken for it.

Until its record is in the state (or, for a router, in `router.json`), a server is
recorded as a process group the next apply stops (`compute.groups`): an apply killed
between starting one and recording it leaves nothing that no record names.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlform.cachedir import cache_dir
from mlform.compute import groups
from mlform.kinds.endpoint.instances import Instance, Launch
from mlform.serving import runtime

_STOP_WAIT = 10.0
_exits: dict[int, int] = {}  # pid → exit code, for the children this process reaped
_unrecorded: dict[int, groups.Group] = {}  # pid → its group, until `recorded(pid)`


@dataclass(frozen=True, slots=True)
class Process:
    """A process this machine runs: its pid, and when it started (clock ticks since boot,
    field 22 of /proc/<pid>/stat). `started` is None in records from older mlform
    versions; those are known by the instance id in their environment instead."""

    pid: int
    started: int | None
    instance: str = ""

    @property
    def handle(self) -> str:
        return f"{self.pid}@{self.started}" if self.started is not None else str(self.pid)

    @classmethod
    def parse(cls, handle: str, instance: str = "") -> Process:
        pid, _, started = handle.partition("@")
        return cls(int(pid), int(started) if started else None, instance)

    def running(self) -> bool:
        _reap(self.pid)
        stat = _stat(self.pid)
        if stat is None or stat[0] in (b"Z", b"X"):
            return False
        if self.started is not None:
            return int(stat[19]) == self.started
        # /proc/<pid>/environ reads empty for a moment after a spawn: good enough only
        # for an old record, whose process has long been running.
        try:
            with open(f"/proc/{self.pid}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            return False
        return f"MLFORM_INSTANCE={self.instance}".encode() in environ

    def exit_code(self) -> int | None:
        """How it ended, if this process started and reaped it; else None."""
        _reap(self.pid)
        return _exits.get(self.pid)


class LocalTarget:
    def start(self, launch: Launch, port: int, log: Callable[[str], None]) -> Instance:
        assert launch.python is not None and launch.runtime is not None
        packages = runtime.packages(_cache(), capture="MLFORM_CAPTURE_DIR" in launch.variables)
        serving = launch.runtime
        env = {
            "PATH": f"{launch.python.parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "HOME": os.environ.get("HOME", "/"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONPATH": os.pathsep.join((str(serving), str(packages))),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **launch.server_environment(),
            "MLFORM_INSTANCE": launch.instance,
            "MLFORM_SCORING_SCRIPT": str(launch.code / launch.script),
            "MLFORM_MODEL_DIR": str(launch.model_dir),
            "AZUREML_MODEL_DIR": str(launch.azureml_model_dir or launch.model_dir),
            "MLFORM_DEPLOYMENT": launch.deployment,
            "MLFORM_HOST": "127.0.0.1",
            "MLFORM_PORT": str(port),
            "MLFORM_WORKERS": str(launch.workers),
        }
        logfile = launch.folder / "server.log"
        process = spawn(
            [str(launch.python), "-m", "mlform.serving"],
            env,
            logfile,
            cwd=launch.code,
            what=f"deployment {launch.endpoint}/{launch.deployment}",
        )
        log(f"deployment {launch.deployment}: started pid {process.pid} on port {port}")
        return Instance(
            launch.endpoint,
            launch.deployment,
            launch.instance,
            "local",
            launch.digest,
            launch.model,
            port,
            process.handle,
            str(logfile),
        )

    def alive(self, instance: Instance) -> bool:
        return Process.parse(instance.handle, instance.instance).running()

    def stop(self, instance: Instance) -> None:
        terminate(Process.parse(instance.handle, instance.instance))

    def kill(self, instance: Instance) -> None:
        kill(Process.parse(instance.handle, instance.instance))

    def tail(self, instance: Instance, lines: int) -> str:
        return tail(Path(instance.log), lines)


def spawn(
    argv: list[str], env: dict[str, str], logfile: Path, *, cwd: Path, what: str = "a server"
) -> Process:
    """Start `argv` in a new session with its output appended to `logfile`; no Popen
    object is kept (the process outlives this one, and nothing here waits for it). It is
    a recorded group (`what`) until `recorded(pid)`: once the caller has recorded it."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(logfile), flags, 0o600),  # its owner's, as the state
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    # posix_spawn has no cwd, and chdir here would move every thread of the apply:
    # the shell changes folder, then becomes the program (same pid, same start time).
    shell = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(cwd), *argv]
    group = groups.Group(what)
    try:
        pid = os.posix_spawn(shell[0], shell, group.env(env), file_actions=actions, setsid=True)
    except BaseException:
        group.forget()
        raise
    group.attach(pid)
    _unrecorded[pid] = group
    _exits.pop(pid, None)
    # Our child cannot be reaped before we wait for it, so its /proc entry is there.
    stat = _stat(pid)
    return Process(pid, int(stat[19]) if stat else None, env.get("MLFORM_INSTANCE", ""))


def recorded(pid: int) -> None:
    """The server `pid` is recorded where the next apply finds it: no longer a group to
    stop if this mlform is killed."""
    group = _unrecorded.pop(pid, None)
    if group is not None:
        group.forget()


def terminate(process: Process) -> None:
    """SIGTERM (uvicorn finishes the requests in flight), then SIGKILL after a while."""
    if not process.running():
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_WAIT
    while time.monotonic() < deadline:
        if not process.running():
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    _reap(process.pid)


def kill(process: Process) -> None:
    """SIGKILL the process group, which even a stopped (SIGSTOP) process cannot ignore."""
    if not process.running():
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + _STOP_WAIT
    while process.running() and time.monotonic() < deadline:
        time.sleep(0.02)


def tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _stat(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat's fields from the state on (field 3 is [0], field 22 is [19]):
    after the last ")", since the command name in parentheses may hold spaces."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _reap(pid: int) -> None:
    """Collect the exit of an instance this process started (else it stays a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            _exits[pid] = os.waitstatus_to_exitcode(status)


def _cache() -> Path:
    return cache_dir()
