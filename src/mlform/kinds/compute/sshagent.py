"""A run on another machine, as the machine's end of the SSH session runs it.

This file is sent as the session's command (`python3 -c SOURCE`): it imports nothing of
mlform and nothing beyond the standard library, as it runs in the machine's own python3.
The session's stdin and stdout carry frames, each a line of JSON, followed by `size` raw
bytes when it says so:

    machine → apply   {"home": …, "python": …, "built": […]}  first: what it is
    apply → machine   {"files": [[sha256, path], …], "links": …, "folders": …}
    machine → apply   {"missing": [sha256, …]}              blobs the machine lacks
    apply → machine   {"blob": sha256, "size": n} + bytes   each of those, once
    machine → apply   {"placed": n}                         (files again, or the command:)
    apply → machine   {"start": …}                          the command and its folder
    machine → apply   {"started": pid}
    machine → apply   {"grew": name, "size": n} + bytes     the log and metrics, as they grow
    apply → machine   {"stop": true}                        Ctrl-C, a timeout
    machine → apply   {"file": relative, "size": n} + bytes the run's files, when it ends
    machine → apply   {"exit": code}                        last

Every file is placed at its path as a hard link to its blob (`blobs/<sha256>`), so a file
already in place for an earlier run (the SDK's, a data set's) costs one `stat`. The
command runs in a process group of its own, which this process leads the life of: when
the command ends, what it left running is stopped; when the session ends first (the
connection dropped, sshd died, the apply was killed), the whole group is stopped, SIGTERM
then SIGKILL. So nothing runs there that no one follows, and there is one round trip to
start a run and none to follow it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

GRACE = 5.0  # seconds between SIGTERM and SIGKILL
EVERY = 0.1  # seconds between two looks at the followed files
CHUNK = 1 << 16
SECRETS = ".secret-variables.sh"


class Session:
    def __init__(self) -> None:
        self.inp = sys.stdin.buffer
        self.out = sys.stdout.buffer
        self.stop = threading.Event()
        self.lost = threading.Event()

    def read(self) -> dict[str, Any]:
        line = self.inp.readline()
        if not line:
            raise EOFError
        frame: dict[str, Any] = json.loads(line)
        return frame

    def send(self, frame: dict[str, Any], data: bytes = b"") -> None:
        if data:
            frame = dict(frame, size=len(data))
        self.write(json.dumps(frame).encode() + b"\n" + data)
        self.flush()

    def send_file(self, frame: dict[str, Any], path: str) -> None:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            self.write(json.dumps(dict(frame, size=size)).encode() + b"\n")
            left = size
            while left:
                data = handle.read(min(CHUNK, left)) or b"\0" * min(CHUNK, left)  # it shrank
                self.write(data)
                left -= len(data)
        self.flush()

    def write(self, data: bytes) -> None:
        if self.lost.is_set():
            return
        try:
            self.out.write(data)
        except OSError:  # the session has gone
            self.lost.set()

    def flush(self) -> None:
        try:
            self.out.flush()
        except OSError:
            self.lost.set()

    def listen(self) -> None:
        """The apply's frames while the command runs: `stop`, or the session's end."""
        try:
            while True:
                frame = self.read()
                if frame.get("stop"):
                    self.stop.set()
        except (EOFError, OSError, ValueError):
            self.lost.set()


def receive_blobs(session: Session, blobs: str, missing: list[Any]) -> None:
    for _ in missing:
        frame = session.read()
        sha, left = frame["blob"], int(frame["size"])
        partial = os.path.join(blobs, f".{sha}.{os.getpid()}.partial")
        with open(partial, "wb") as out:
            while left:
                data = session.inp.read(min(CHUNK, left))
                if not data:
                    raise EOFError
                out.write(data)
                left -= len(data)
        os.chmod(partial, int(frame.get("mode", 0o644)) | 0o400)
        os.replace(partial, os.path.join(blobs, sha))  # over one another run sent: the same


def place(blobs: str, files: list[Any], links: list[Any], folders: list[Any]) -> None:
    """Each file at its path as a link to its blob; each symlink; each folder."""
    for folder in folders:
        os.makedirs(folder, exist_ok=True)
    for sha, path in files:
        blob = os.path.join(blobs, sha)
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == os.stat(blob).st_ino:
                continue  # in place since an earlier run
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{os.getpid()}.partial"
        os.link(blob, partial)
        os.replace(partial, path)
    for path, target in links:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.islink(path) and os.readlink(path) == target:
            continue
        partial = f"{path}.{os.getpid()}.partial"
        os.symlink(target, partial)
        os.replace(partial, path)


def group_alive(pid: int) -> bool:
    """Whether a process of group `pid` still runs. A process that has ended but is not
    yet reaped (its parent gone, the machine's init slow to reap) no longer counts."""
    if os.path.isdir("/proc/self"):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue  # it ended as we looked
            if int(fields[2]) == pid and fields[0] != b"Z":
                return True
        return False
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(pid: int, grace: float) -> None:
    """SIGTERM the group, then SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.05)


class Followed:
    """The files read back as they grow: each name's offset."""

    def __init__(self, folder: str, names: list[Any]) -> None:
        self.folder = folder
        self.offsets = dict.fromkeys(names, 0)

    def send_new(self, session: Session) -> None:
        for name, offset in self.offsets.items():
            try:
                with open(os.path.join(self.folder, name), "rb") as handle:
                    handle.seek(offset)
                    data = handle.read(1 << 20)
            except OSError:
                continue
            if data:
                self.offsets[name] = offset + len(data)
                session.send({"grew": name}, data)


def run(session: Session, start: dict[str, Any]) -> None:
    folder = start["folder"]
    os.makedirs(os.path.join(folder, "logs"), exist_ok=True)
    secrets = os.path.join(folder, SECRETS)
    if start.get("secrets"):  # readable by its user alone before it holds anything
        fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as held:
            held.write(start["secrets"])
    with open(os.path.join(folder, "logs", "std_log.txt"), "ab") as log:
        process = subprocess.Popen(
            ["sh", "-c", start["command"]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own, which `end_group` stops
        )
    session.send({"started": process.pid})
    threading.Thread(target=session.listen, daemon=True).start()
    followed = Followed(folder, start["followed"])
    code = None
    while code is None:
        followed.send_new(session)
        if session.lost.is_set():
            end_group(process.pid, GRACE)
            process.wait()
            remove(secrets)
            return
        if session.stop.is_set():
            end_group(process.pid, GRACE)
        try:
            code = process.wait(EVERY)  # at once when it ends: a short run is not held up
        except subprocess.TimeoutExpired:
            code = None
    end_group(process.pid, 0.5)  # what the command left running ends with it
    remove(secrets)
    followed.send_new(session)
    followed.send_new(session)  # past the 1 MiB a look sends
    bring_back(session, folder, start["sent"], set(start["followed"]) | {SECRETS})
    session.send({"exit": code})


def bring_back(session: Session, folder: str, sent: list[Any], skipped: set[str]) -> None:
    """Every file the run wrote, but what it was sent and what was followed."""
    for parent, dirs, names in os.walk(folder):
        relative_dir = os.path.relpath(parent, folder)
        if relative_dir == ".":
            dirs[:] = sorted(d for d in dirs if d not in sent)
        else:
            dirs.sort()
        for name in sorted(names):
            relative = os.path.normpath(os.path.join(relative_dir, name))
            path = os.path.join(parent, name)
            if relative in skipped or os.path.islink(path) or not os.path.isfile(path):
                continue
            session.send_file({"file": relative}, path)


def remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def python_facts(probe: str) -> dict[str, Any]:
    """What `probe` (the wheel downloader's, given as this program's argument) prints
    of this Python: what the environment's wheels are chosen for."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(probe, {"__name__": "probe"})
    facts: dict[str, Any] = json.loads(printed.getvalue())
    return facts


def main() -> None:
    session = Session()
    home = os.path.join(os.path.expanduser("~"), ".mlform")
    blobs = os.path.join(home, "blobs")
    os.makedirs(blobs, exist_ok=True)
    venvs = os.path.join(home, "venvs")
    built = sorted(
        name
        for name in (os.listdir(venvs) if os.path.isdir(venvs) else [])
        if os.path.exists(os.path.join(venvs, name, ".complete"))
    )
    session.send({"home": home, "python": python_facts(sys.argv[1]), "built": built})
    try:
        while True:
            frame = session.read()
            if "start" in frame:
                break
            wanted = sorted({sha for sha, _ in frame["files"]})
            missing = [sha for sha in wanted if not os.path.exists(os.path.join(blobs, sha))]
            session.send({"missing": missing})
            receive_blobs(session, blobs, missing)
            place(blobs, frame["files"], frame["links"], frame["folders"])
            session.send({"placed": len(frame["files"])})
    except EOFError:
        return  # the apply went away before a command started
    run(session, frame["start"])


if __name__ == "__main__":
    main()
