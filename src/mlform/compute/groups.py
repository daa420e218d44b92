"""Process groups mlform starts, recorded so that the next apply stops what a killed one
left running.

Everything an apply starts that is meant to end with it (a run, a pipeline step, `pip`
building an environment, `pip download` for an image) runs in a session of its own, so
one signal reaches all it started. Before it starts, a record is written to the cache's
`processes/` folder naming the mlform process that owns it (pid and start time, so a
reused pid is not mistaken for it) and a token the group carries in its environment;
once started, the record gains the group's id. The record goes when the group has
ended. A record whose owner is gone is an orphan: `reap` (run as an apply starts) kills
every process of its group, and any process carrying its token, then forgets it.

A group is killed before its leader is reaped, so the group id cannot have been given to
another process in between: a leader that exited but was not waited for keeps its id.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlform.cachedir import cache_dir

TOKEN = "MLFORM_GROUP"
_GONE_WITHIN = 10.0  # seconds a SIGKILLed group may take to disappear
_YOUNG = 2.0  # seconds after its start that a process may not show its environment yet


def folder() -> Path:
    return cache_dir() / "processes"


@dataclass(frozen=True, slots=True)
class Seen:
    """A process as /proc shows it."""

    pid: int
    pgid: int
    started: int  # clock ticks since boot: with the pid, names one process for good
    token: str | None  # the group token in its environment, if it carries one (see _token)


class Group:
    """One group being started or running, and its record."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.token = secrets.token_hex(8)
        self.pgid: int | None = None
        self.started: int | None = None
        self.record = folder() / f"{self.token}.json"
        self._save()

    def attach(self, pid: int) -> None:
        self.pgid = pid
        self.started = start_time(pid)
        self._save()

    def env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {**(os.environ if env is None else env), TOKEN: self.token}

    def exited(self, process: subprocess.Popen[Any]) -> bool:
        """Whether the leader has ended, without reaping it (its id stays ours)."""
        if process.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def end(self, process: subprocess.Popen[Any]) -> int:
        """Kill what is left of the group (everything, if the leader still runs), reap
        the leader and forget the record; the leader's exit code."""
        if process.returncode is None:  # not reaped: the group id is still this group's
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        code = process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        self.forget()
        return code

    def forget(self) -> None:
        self.record.unlink(missing_ok=True)

    def _save(self) -> None:
        data = {
            "what": self.what,
            "owner": [os.getpid(), start_time(os.getpid())],
            "token": self.token,
            "pgid": self.pgid,
            "started": self.started,
        }
        self.record.parent.mkdir(parents=True, exist_ok=True)
        partial = self.record.with_suffix(".partial")
        partial.write_text(json.dumps(data), encoding="utf-8")
        os.replace(partial, self.record)


def popen(
    command: Sequence[str], *, what: str, env: Mapping[str, str] | None = None, **kwargs: Any
) -> tuple[subprocess.Popen[Any], Group]:
    """Start `command` in a new session, recorded as `what` until `Group.end`."""
    group = Group(what)
    try:
        process = subprocess.Popen(command, env=group.env(env), start_new_session=True, **kwargs)
    except BaseException:
        group.forget()
        raise
    group.attach(process.pid)
    return process, group


@contextlib.contextmanager
def running(
    command: Sequence[str], *, what: str, env: Mapping[str, str] | None = None, **kwargs: Any
) -> Iterator[tuple[subprocess.Popen[Any], Group]]:
    """`popen`, ended (the rest of its group killed, its record gone) when the block
    ends, whether the block finished or was interrupted."""
    process, group = popen(command, what=what, env=env, **kwargs)
    try:
        yield process, group
    finally:
        group.end(process)


def output(command: Sequence[str], *, what: str, **kwargs: Any) -> tuple[int, str]:
    """Run `command` to its end in a recorded group; its exit code and merged output."""
    with running(
        command,
        what=what,
        **kwargs,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as (process, group):
        assert process.stdout is not None
        text = process.stdout.read()
        code = group.end(process)
    return code, text


def reap() -> list[str]:
    """Stop every recorded group whose owner is gone; what each of them was."""
    stale: list[tuple[Path, dict[str, Any]]] = []
    try:
        records = sorted(folder().glob("*.json"))
    except OSError:
        return []
    for path in records:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            owner_pid, owner_started = data["owner"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _alive(int(owner_pid), owner_started):
            stale.append((path, data))
    if not stale:
        return []
    tokens = {str(data["token"]) for _, data in stale}
    groups = {int(d["pgid"]): d.get("started") for _, d in stale if d.get("pgid") is not None}
    deadline = time.monotonic() + _GONE_WITHIN
    while time.monotonic() < deadline:
        victims, unsure = _members(tokens, groups)
        if not victims and not unsure:
            break
        for seen in victims:
            _kill(seen)
        # a dying process may no longer show its environment: wait for these to be gone
        # rather than for a scan to stop finding them
        while any(_alive(s.pid, s.started) for s in victims) and time.monotonic() < deadline:
            time.sleep(0.01)
        if unsure and not victims:
            time.sleep(0.01)  # a process still starting: its environment is there soon
    for path, _ in stale:
        path.unlink(missing_ok=True)
    return [str(data.get("what", "a process")) for _, data in stale]


def _members(tokens: set[str], groups: Mapping[int, int | None]) -> tuple[list[Seen], bool]:
    """The live processes of the given groups, or carrying one of the tokens; and
    whether a process too young to show its environment yet might be one of them."""
    seen = list(_processes())
    by_pid = {s.pid: s for s in seen}
    ours: set[int] = set()
    for pgid, started in groups.items():
        leader = by_pid.get(pgid)
        # a living process with the group's id that started at another time means the
        # id was freed and given again: that group is not this one
        if leader is None or started is None or leader.started == started:
            ours.add(pgid)
    me = os.getpid()
    victims = [s for s in seen if s.pid != me and (s.pgid in ours or s.token in tokens)]
    young = _ticks_now() - _YOUNG * os.sysconf("SC_CLK_TCK")
    unsure = any(s.token == "" and s.started > young for s in seen if s.pid != me)
    return victims, unsure


def _processes() -> Iterator[Seen]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        stat = _stat(pid)
        if stat is None or stat[0] in (b"Z", b"X"):
            continue  # gone, or dead and waiting to be reaped
        yield Seen(pid, int(stat[2]), int(stat[19]), _token(pid))


def _ticks_now() -> float:
    try:
        with open("/proc/uptime", encoding="ascii") as handle:
            return float(handle.read().split()[0]) * os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _token(pid: int) -> str | None:
    """The group token in the process's environment; "" while the environment reads
    empty, as it does for a moment after exec (and always for kernel threads)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return None
    if not environ:
        return ""
    prefix = f"{TOKEN}=".encode()
    for item in environ.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def _kill(seen: Seen) -> None:
    """SIGKILL exactly the process seen: through a pidfd, checked to be the same one."""
    try:
        fd = os.pidfd_open(seen.pid)
    except (OSError, AttributeError):
        if start_time(seen.pid) == seen.started:
            with contextlib.suppress(OSError):
                os.kill(seen.pid, signal.SIGKILL)
        return
    try:
        if start_time(seen.pid) == seen.started:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)


def _alive(pid: int, started: int | None) -> bool:
    stat = _stat(pid)
    if stat is None or stat[0] in (b"Z", b"X"):
        return False
    return started is None or int(stat[19]) == started


def start_time(pid: int) -> int | None:
    stat = _stat(pid)
    return None if stat is None else int(stat[19])


def _stat(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat's fields from the state on (field 3 is [0], the process group
    [2], the start time [19]): after the last ")", as the name may hold spaces."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
