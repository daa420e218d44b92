"""The local target: the command as a subprocess in its own session on this machine.

Its own session makes it the leader of a process group, so stopping it reaches every
process the script started (data loaders, pip, a shell pipeline), and a Ctrl-C meant for
mlform does not reach it until mlform decides: the run is then marked canceled, not
left half-dead.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlform.compute import Launch

_GRACE_SECONDS = 5.0


class LocalHandle:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.ident = str(process.pid)  # also its process group: it leads its own session

    def poll(self) -> int | None:
        return self.process.poll()

    def stop(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                return self.process.wait(timeout=_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                continue
        return self.process.wait()


class LocalTarget:
    def start(self, launch: Launch) -> LocalHandle:
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        with launch.log.open("ab") as log:
            process = subprocess.Popen(
                ["/bin/bash", "-c", launch.command],
                cwd=launch.cwd,
                env=dict(launch.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return LocalHandle(process)

    def stop_orphan(self, ident: str) -> bool:
        try:
            os.killpg(int(ident), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError):
            return False
        return True
