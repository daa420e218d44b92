"""Instances as processes on this machine. Each is started in a session of its own,
detached from the apply that starts it, so it keeps serving after `mlform apply` returns;
its pid, port and log are recorded. Whether it still runs is checked against the
process itself (its environment names the instance), so a reused pid is not mistaken
for it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from mlform.endpoints import runtime
from mlform.endpoints.instances import Instance, Launch

_STOP_WAIT = 10.0


class LocalTarget:
    def start(self, launch: Launch, port: int, log: Callable[[str], None]) -> Instance:
        assert launch.python is not None
        from mlform.resources.image import runtime_folder

        packages = runtime.packages(_cache(), capture="MLFORM_CAPTURE_DIR" in launch.variables)
        serving = runtime_folder(_cache())
        env = {
            "PATH": f"{launch.python.parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "HOME": os.environ.get("HOME", "/"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONPATH": os.pathsep.join((str(serving), str(packages))),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **launch.variables,
            "MLFORM_INSTANCE": launch.instance,
            "MLFORM_SCORING_SCRIPT": str(launch.code / launch.script),
            "MLFORM_MODEL_DIR": str(launch.model_dir),
            "MLFORM_DEPLOYMENT": launch.deployment,
            "MLFORM_HOST": "127.0.0.1",
            "MLFORM_PORT": str(port),
            "MLFORM_WORKERS": str(launch.workers),
        }
        logfile = launch.folder / "server.log"
        pid = spawn([str(launch.python), "-m", "mlform.serving"], env, logfile, cwd=launch.code)
        log(f"deployment {launch.deployment}: started pid {pid} on port {port}")
        return Instance(
            launch.endpoint,
            launch.deployment,
            launch.instance,
            "local",
            launch.digest,
            launch.model,
            port,
            str(pid),
            str(logfile),
        )

    def alive(self, instance: Instance) -> bool:
        return running(int(instance.handle), instance.instance)

    def stop(self, instance: Instance) -> None:
        terminate(int(instance.handle), instance.instance)

    def tail(self, instance: Instance, lines: int) -> str:
        return tail(Path(instance.log), lines)


def spawn(argv: list[str], env: dict[str, str], logfile: Path, *, cwd: Path) -> int:
    """Start `argv` in a new session with its output appended to `logfile`; no Popen
    object is kept (the process outlives this one, and nothing here waits for it)."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(logfile), flags, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    # posix_spawn has no cwd, and chdir here would move every thread of the apply:
    # the shell changes folder, then becomes the program (same pid).
    shell = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(cwd), *argv]
    return os.posix_spawn(shell[0], shell, env, file_actions=actions, setsid=True)


def running(pid: int, instance: str) -> bool:
    _reap(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return False
    return state not in (b"Z", b"X") and f"MLFORM_INSTANCE={instance}".encode() in environ


def terminate(pid: int, instance: str) -> None:
    """SIGTERM (uvicorn finishes the requests in flight), then SIGKILL after a while."""
    if not running(pid, instance):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_WAIT
    while time.monotonic() < deadline:
        if not running(pid, instance):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _reap(pid: int) -> None:
    """Collect the exit of an instance this process started (else it stays a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _cache() -> Path:
    from mlform.resources.base import cache_dir

    return cache_dir()
