"""The local target: the command as a subprocess in its own session on this machine.

Its own session makes it the leader of a process group, so stopping it reaches every
process the script started (data loaders, pip, a shell pipeline), and a Ctrl-C meant for
mlform does not reach it until mlform decides: the run is then marked canceled, not
left half-dead. The group is recorded (`groups`) until it has ended, so an apply killed
while it runs leaves nothing the next apply does not stop; what the script left running
when it ended is stopped with it, as Azure ML ends a job's container.

Its stdout and stderr go into one pipe that a thread of the apply copies to the run's
log, the run's secret values masked (`masking`). If the apply dies, the pipe breaks: the
command's next write fails, and the next apply stops whatever is left of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

from mlform.compute import groups
from mlform.masking import Masker
from mlform.masking.relay import Relay

if TYPE_CHECKING:
    from mlform.compute import Launch

_GRACE_SECONDS = 5.0


class LocalHandle:
    def __init__(self, process: subprocess.Popen[bytes], group: groups.Group, relay: Relay) -> None:
        self.process = process
        self.group = group
        self.relay = relay
        # its process group too (it leads its own session), and its start time: a pid the
        # system has given to another process since is not mistaken for it
        self.ident = f"{process.pid}@{group.started}"

    def poll(self) -> int | None:
        if not self.group.exited(self.process):
            return None
        return self._end()

    def stop(self) -> int:
        if not self.group.exited(self.process):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            deadline = time.monotonic() + _GRACE_SECONDS
            while not self.group.exited(self.process) and time.monotonic() < deadline:
                time.sleep(0.05)
        return self._end()

    def _end(self) -> int:
        # the whole group is gone once `end` returns: what it wrote is in the pipe
        code = self.group.end(self.process)
        self.relay.close()
        return code


class LocalTarget:
    def start(self, launch: Launch) -> LocalHandle:
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(launch.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        read, write = os.pipe()
        relay = Relay(read, log, Masker(launch.secrets))
        try:
            process, group = groups.popen(
                ["/bin/bash", "-c", launch.command],
                what=f"run {launch.env.get('MLFORM_RUN_ID', launch.command)}",
                cwd=launch.cwd,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=write,
                stderr=subprocess.STDOUT,
            )
        except BaseException:
            relay.close()
            raise
        finally:
            os.close(write)
        return LocalHandle(process, group, relay)

    def stop_orphan(self, ident: str) -> bool:
        pid, _, started = ident.partition("@")
        if not started or not pid.isdigit() or groups.start_time(int(pid)) != int(started):
            # gone, or its pid given to another process; a group whose leader is gone was
            # stopped by `groups.reap` as the apply started
            return False
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return False
        return True
