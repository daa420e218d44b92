"""The virtualmachine target: a run on another machine over SSH (Azure ML's attached VM),
through `fabric`.

On the machine, under the user's `~/.mlform/`:

    blobs/<sha256>        every file sent, once: an unchanged file is never sent again
    venvs/<key>/          an environment, built from wheels this machine downloaded for
                          the remote's Python (the same wheels an image gets), once
    mirror/<local path>   what a run reads and writes, at its local path under mirror/

A run's folder (its snapshot, data inputs and the SDK's package) is mirrored there, each
file hard-linked from its blob, so the command line and every path it was given are the
local ones with `mirror/` in front.

One connection and one command serve a run: the run's agent (`sshagent`, the machine's
python3 running a file of the standard library only), which first says what the machine
is (its home, its Python for the environment's wheels, the environments built there),
and whose session then carries everything else both ways: the blobs the machine lacks,
the command, the log and metrics as they grow, the run's files and exit code when it
ends, and a stop. The run lives as long as that session: when it ends first (the
connection dropped, sshd died, the apply was killed), the agent stops the run's process
group, so nothing is left running that no one follows. Secret variables travel in that
session into a file only the remote user reads, sourced by the command's shell and
removed when the run ends; the log shows them as `***`.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import json
import os
import re
import shlex
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mlform.cachedir import cache_dir
from mlform.compute import Launch, RemoteHost, said, secret_variables, shell_exports
from mlform.config.refs import AssetRef
from mlform.context import Context
from mlform.errors import ApplyError, why_unreachable
from mlform.kinds.compute import sshagent
from mlform.masking import Masker
from mlform.tracking import protocol

if TYPE_CHECKING:
    from fabric import Connection
    from paramiko import Channel

_GRACE_SECONDS = sshagent.GRACE
_STOP_SLACK = 25.0  # seconds past the grace a stopped run's agent has to report
_ANSWER_SECONDS = 120.0  # the longest the agent may take to answer at start-up
_CONNECT_SECONDS = 15.0  # the longest a machine may take to accept the connection
_PUMP_BYTES = 8 << 20  # the most a look at a running run takes in
q = shlex.quote  # every path in a command line: a workspace's path may hold spaces
_IDLE_FOR = 30.0  # seconds an open connection waits for the run that will use it
_HOME = ".mlform"
# what a run's folder does not bring back from the machine: what was sent to it
_SENT = ("snapshot", "inputs", ".sdk")
_FOLLOWED = (f"{protocol.LOGS}/std_log.txt", "metrics.csv")  # read back as they grow
_SECRETS = sshagent.SECRETS
_AGENT = Path(sshagent.__file__).read_text(encoding="utf-8")


def connect(host: RemoteHost) -> Connection:
    """An open connection to `host`, or an ApplyError that says why there is none."""
    # start-up: fabric (and paramiko) only for a run on another machine
    from fabric import Connection

    where = f"{host.user}@{host.host}:{host.port}"
    try:
        sock = _dial(host)
    except OSError as err:
        raise ApplyError(
            f"cannot reach {where}: {why_unreachable(err)}; check the compute's host and "
            "ssh_port, and that sshd runs there"
        ) from err
    conn = Connection(
        host.host,
        user=host.user,
        port=host.port,
        connect_kwargs={
            "sock": sock,
            "key_filename": str(host.key_file),
            "look_for_keys": False,
            "allow_agent": False,
        },
    )
    try:
        # a host the user's known_hosts records must show that key (paramiko refuses another)
        known = Path("~/.ssh/known_hosts").expanduser()
        if known.is_file():
            conn.client.load_system_host_keys(str(known))  # read, never written back
        conn.open()
    except Exception as err:  # paramiko's and the socket's, as they come
        conn.close()
        sock.close()
        raise ApplyError(f"cannot reach {where}: {err}") from err
    return conn


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux's


class _Socket(socket.socket):
    """The connection's TCP socket: each write sent at once, each read acknowledged at once.

    An SSH server writes with Nagle's algorithm on (OpenSSH turns it off only for a session
    with a terminal), so a small packet that follows one not yet acknowledged waits for the
    acknowledgement, which Linux delays up to 40 ms when it has nothing to send back: 40 ms
    before the first session opens, and again at any step of a conversation like the
    agent's. Acknowledging every read at once (TCP_QUICKACK, which the kernel clears as it
    goes, so it is set again after each read) ends those stalls."""

    __slots__ = ()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        if _QUICKACK is not None:
            self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return data


def _dial(host: RemoteHost) -> _Socket:
    plain = socket.create_connection((host.host, host.port), timeout=_CONNECT_SECONDS)
    sock = _Socket(fileno=plain.detach())
    sock.settimeout(_CONNECT_SECONDS)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run(conn: Connection, command: str, what: str) -> str:
    """`command` in the remote user's shell; its output, or an ApplyError that says `what`
    failed, with the last lines it printed."""
    # a session of paramiko's own: fabric's `run` adds invoke's runner threads, a tenth
    # of a second a command, which nothing here needs
    out, err = bytearray(), bytearray()
    try:
        channel = conn.client.get_transport().open_session()
        with channel:
            channel.exec_command(command)
            while True:  # both streams, as they come: a full one would stall the other
                got = False
                while channel.recv_ready():
                    out += channel.recv(1 << 16)
                    got = True
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(1 << 16)
                    got = True
                if not got and channel.exit_status_ready():
                    break
                if not got:
                    time.sleep(0.002)
            code = channel.recv_exit_status()
    except Exception as error:  # paramiko's and the socket's, as they come
        where = f"{conn.user}@{conn.host}:{conn.port}"
        raise ApplyError(f"{what}: cannot reach {where}: {error}") from error
    if code != 0:
        said = (err or out).decode(errors="replace").strip()
        tail = "\n".join(said.splitlines()[-10:])
        raise ApplyError(f"{what} on {conn.host} failed (exit code {code}):\n{tail}")
    return out.decode(errors="replace")


class Remote:
    """One machine over one connection, and its agent (`sshagent`) in a session of its
    own, which puts files in place by content and runs one command."""

    def __init__(self, host: RemoteHost) -> None:
        # start-up: the wheel downloader's probe only for a run on another machine
        from mlform.containers import wheels

        self.host = host
        self.conn = connect(host)
        channel: Channel = self.conn.client.get_transport().open_session()
        channel.exec_command(f"python3 -c {q(_AGENT)} {q(wheels.PROBE)}")
        self.agent = _Frames(channel)
        # its first word: its home, its Python (what the wheels are for), its environments
        try:
            said = self.agent.expect("home")
        except EOFError as err:
            self.close()
            raise ApplyError(
                f"looking at {host.host} failed: {err}; mlform needs python3 with its venv "
                "module there"
            ) from err
        except BaseException:
            self.close()
            raise
        self.home = str(said["home"])
        python = said["python"]
        assert isinstance(python, dict)
        self.python: dict[str, object] = python
        built = said["built"]
        assert isinstance(built, list)
        self.built = {str(name) for name in built}

    def close(self) -> None:
        self.agent.close()
        self.conn.close()

    def mirrored(self, local: str | Path) -> str:
        """Where a local path is on the machine."""
        return f"{self.home}/mirror{Path(local)}"

    def send(
        self,
        files: Iterable[tuple[Path, str]],
        links: Iterable[tuple[str, str]] = (),
        folders: Iterable[str] = (),
    ) -> tuple[int, int]:
        """Put each (local file, path there) in place, each (path there, target) symlink
        and each folder; a file's content goes over only when the machine has no blob of
        it. Return how many files were placed and how many blobs sent."""
        blobs: dict[str, Path] = {}
        placed: list[tuple[str, str]] = []
        for local, there in files:
            sha = _sha256(local)
            blobs[sha] = local
            placed.append((sha, there))
        self.agent.send({"files": placed, "links": list(links), "folders": list(folders)})
        missing = self.agent.expect("missing")["missing"]
        assert isinstance(missing, list)
        for sha in missing:
            _send_blob(self.agent, str(sha), blobs[str(sha)])
        self.agent.expect("placed")
        return len(placed), len(missing)

    def environment(
        self, requirements: tuple[str, ...], cache: Path, log: Callable[[str], None]
    ) -> str:
        """A virtual environment with `requirements` on the machine (built from wheels
        this machine downloads for its Python, the first time): its folder."""
        # start-up: the wheel downloader only for a run on another machine
        from mlform.containers import wheels

        target = wheels.target_of(f"{self.host.host}'s python3", self.python)
        folder = wheels.download(requirements, target, cache, log)
        key = folder.name
        venv = f"{self.home}/venvs/{key}"
        if key in self.built:
            return venv
        log(f"environment on {self.host.host}: building {venv} ({len(requirements)} packages)")
        wheelhouse = f"{self.home}/wheels/{key}"
        self.send((p, f"{wheelhouse}/{p.name}") for p in sorted(folder.iterdir()) if p.is_file())
        built, house = q(venv), q(wheelhouse)
        build = (
            f"test -e {built}/.complete && exit 0\n"  # another run built it meanwhile
            f"rm -rf {built}\n"
            f"python3 -m venv {built}\n"
            f"{built}/bin/pip install --no-index --find-links {house} --no-cache-dir "
            "--disable-pip-version-check --no-input --progress-bar off "
            f"--requirement {house}/{wheels.REQUIREMENTS} 2>&1\n"
            f"touch {built}/.complete\n"
        )
        run(
            self.conn,
            f"mkdir -p {q(self.home)}/venvs && "
            f"flock {q(self.home)}/venvs/.{key}.lock sh -e -c {q(build)}",
            f"building the environment on {self.host.host}",
        )
        self.built.add(key)
        return venv


class _Idle:
    """Connections opened to build a run's environment, left open for the run's start
    (one handshake, not two); one left unused for `_IDLE_FOR` seconds is closed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list[tuple[Remote, float]] = []
        atexit.register(self.close_all)

    def put(self, remote: Remote) -> None:
        with self.lock:
            self.open.append((remote, time.monotonic()))

    def take(self, host: RemoteHost) -> Remote | None:
        with self.lock:
            fresh = time.monotonic() - _IDLE_FOR
            stale = [r for r, at in self.open if at < fresh]
            self.open = [(r, at) for r, at in self.open if at >= fresh]
            found = next((i for i, (r, _) in enumerate(self.open) if r.host == host), None)
            taken = self.open.pop(found)[0] if found is not None else None
        for remote in stale:
            remote.close()
        return taken

    def close_all(self) -> None:
        with self.lock:
            left, self.open = self.open, []
        for remote, _ in left:
            with contextlib.suppress(Exception):
                remote.close()


_IDLE = _Idle()


class SshHandle:
    """A run the machine's agent (`sshagent`) started and reports on, over its session."""

    def __init__(self, remote: Remote, pid: int) -> None:
        self.remote = remote
        self.frames = remote.agent
        self.pid = pid
        self.ident = json.dumps({**remote.host.to_json(), "pid": pid})
        self._code: int | None = None

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        code = self._pump(0.0)
        return None if code is None else self._end(code)

    def stop(self) -> int:
        if self._code is not None:
            return self._code
        try:
            with _said("stopping the run", self.remote.host):
                self.frames.send({"stop": True})
            # the agent stops the group (SIGTERM, SIGKILL after the grace), then reports
            deadline = time.monotonic() + _GRACE_SECONDS + _STOP_SLACK
            while (code := self._pump(0.25)) is None:
                if time.monotonic() > deadline:
                    raise ApplyError(
                        f"stopping the run on {self.remote.host.host}: no answer in "
                        f"{_GRACE_SECONDS + _STOP_SLACK:.0f} s"
                    )
        except BaseException:
            self.remote.close()  # the session's end stops the run there, if it still runs
            raise
        return self._end(code)

    def _pump(self, wait: float) -> int | None:
        try:
            with _said("following the run", self.remote.host):
                return self.frames.pump(wait)
        except ApplyError as err:
            where = f"{self.remote.host.user}@{self.remote.host.host}:{self.remote.host.port}"
            raise ApplyError(
                f"lost the connection to {where} while the run ran ({err}); the machine "
                "stops the run as the connection drops"
            ) from err

    def _end(self, code: int) -> int:
        self.remote.close()
        self._code = code
        return code


class _Frames:
    """The agent's frames as they arrive (`sshagent`'s docstring): the log (masked) and
    the metrics appended to the local run folder as they grow, the run's files written
    there when it ends, its exit code last; the start-up dialogue's answers kept for
    `expect`."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.buffer = bytearray()
        self.answers: collections.deque[dict[str, object]] = collections.deque()
        self.header: dict[str, object] | None = None  # the frame whose body is arriving
        self.left = 0  # bytes of that body still to come
        self.sink: BinaryIO | None = None  # where they go
        self.code: int | None = None
        self.run_dir = Path()
        self.log = Path()
        self.masker = Masker(()).stream()

    def follow(self, launch: Launch) -> None:
        """Where the run's log, metrics and files go, and what its log shows as `***`."""
        self.run_dir = launch.log.parent.parent
        self.log = launch.log
        self.masker = Masker(launch.secrets).stream()

    def send(self, frame: Mapping[str, object]) -> None:
        self.channel.sendall(json.dumps(frame).encode() + b"\n")

    def expect(self, key: str, wait: float = _ANSWER_SECONDS) -> dict[str, object]:
        """The agent's next answer, which must hold `key`."""
        deadline = time.monotonic() + wait
        while not self.answers:
            if time.monotonic() > deadline:
                raise ApplyError(f"the machine's agent said nothing in {wait:.0f} s")
            self._take(deadline - time.monotonic())
        frame = self.answers.popleft()
        if key not in frame:
            raise ApplyError(f"the machine's agent answered {frame!r}, not {key!r}")
        return frame

    def pump(self, wait: float) -> int | None:
        """Take in what has arrived, waiting up to `wait` seconds for the first of it (at
        most `_PUMP_BYTES` a call: a run that logs fast does not hold up a Ctrl-C); the
        run's exit code once the agent has sent it."""
        deadline = time.monotonic() + wait
        taken = 0
        while self.code is None and taken < _PUMP_BYTES:
            got = self._take(max(deadline - time.monotonic(), 0.0))
            if not got:
                break
            taken += got
        return self.code

    def _take(self, wait: float) -> int:
        """Read what the session has (0 bytes when nothing came in `wait` seconds) and
        handle the whole frames it completes."""
        self.channel.settimeout(wait)
        try:
            data = self.channel.recv(1 << 16)
        except TimeoutError:
            return 0
        if not data:
            said = self.channel.recv_stderr(1 << 16).decode(errors="replace").strip()
            raise EOFError("\n".join(said.splitlines()[-5:]) or "the session ended")
        self.buffer += data
        self._feed()
        return len(data)

    def _feed(self) -> None:
        while self.code is None:
            if self.header is None:
                line_end = self.buffer.find(b"\n")
                if line_end < 0:
                    return
                frame = json.loads(bytes(self.buffer[:line_end]))
                del self.buffer[: line_end + 1]
                if not {"grew", "file", "exit"} & frame.keys():
                    self.answers.append(frame)
                    continue
                self.header, self.left = frame, int(frame.get("size", 0))
                self.sink = self._sink(frame)
            body = bytes(self.buffer[: self.left])
            del self.buffer[: len(body)]
            self.left -= len(body)
            if self.sink is not None and body:
                grew_log = self.header.get("grew") == f"{protocol.LOGS}/std_log.txt"
                self.sink.write(self.masker.feed(body) if grew_log else body)
            if self.left:
                return
            self._done(self.header)

    def _sink(self, frame: Mapping[str, object]) -> BinaryIO | None:
        if "grew" in frame:
            return (self.run_dir / str(frame["grew"])).open("ab")
        if "file" in frame:
            target = (self.run_dir / str(frame["file"])).resolve()
            if not target.is_relative_to(self.run_dir.resolve()):
                raise ApplyError(f"the machine sent a file outside the run: {frame['file']}")
            target.parent.mkdir(parents=True, exist_ok=True)
            return target.open("wb")
        return None

    def _done(self, frame: Mapping[str, object]) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        self.header = None
        if "exit" in frame:
            with self.log.open("ab") as out:
                out.write(self.masker.flush())
            self.code = int(str(frame["exit"]))

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
        self.channel.close()


def _started(remote: Remote, launch: Launch, start: Mapping[str, object]) -> int:
    """Start the run through the machine's agent, whose session the run lives as long
    as; return the run's process group."""
    frames = remote.agent
    frames.follow(launch)
    frames.send({"start": start})
    return int(str(frames.expect("started")["started"]))


def _send_blob(frames: _Frames, sha: str, path: Path) -> None:
    """A file's content as a blob frame: exactly the size announced, however the file
    changes meanwhile (its digest then no longer matches, which the next run finds)."""
    with path.open("rb") as handle:
        facts = os.fstat(handle.fileno())
        left = facts.st_size
        frames.send({"blob": sha, "size": left, "mode": stat.S_IMODE(facts.st_mode)})
        while left:
            chunk = handle.read(min(1 << 16, left)) or bytes(min(1 << 16, left))
            frames.channel.sendall(chunk)
            left -= len(chunk)


def _said(what: str, host: RemoteHost) -> contextlib.AbstractContextManager[None]:
    """An SFTP or SSH failure as an ApplyError that says what failed where."""
    return said(what, f"{host.user}@{host.host}:{host.port}")


class SshTarget:
    def start(self, launch: Launch) -> SshHandle:
        assert launch.host is not None and launch.image is not None
        with _said("starting the run", launch.host):
            remote = _IDLE.take(launch.host) or Remote(launch.host)
            try:
                return self._start(remote, launch)
            except BaseException:
                remote.close()
                raise

    def _start(self, remote: Remote, launch: Launch) -> SshHandle:
        run_dir = launch.log.parent.parent
        files: list[tuple[Path, str]] = []
        links: list[tuple[str, str]] = []
        folders: list[str] = []
        # mlform's own record of the snapshot stays here: the command never reads it, and
        # it changes with every file, which would be sent again each time one does
        kept_here = {run_dir / protocol.LOGS / "snapshot.json"}
        for root in launch.mounts:
            for path in _files(Path(root)):
                if path in kept_here:
                    continue
                if path.is_symlink():
                    links.append((remote.mirrored(path), _mirrored_link(remote, path)))
                elif path.is_dir():
                    folders.append(remote.mirrored(path))
                else:
                    files.append((path, remote.mirrored(path)))
        placed, sent = remote.send(files, links, folders)
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        with launch.log.open("a", encoding="utf-8") as log:
            log.write(
                f"mlform: {placed} files on {remote.host.host}, {sent} of them sent (the "
                "others were there)\n"
            )

        # every local path the run was given, at its place on the machine: in one pass, so
        # that a path already moved is not moved again
        roots = re.compile("|".join(re.escape(r) for r in sorted(launch.mounts, key=len)[::-1]))

        def moved(text: str) -> str:
            return roots.sub(lambda found: remote.mirrored(found[0]), text)

        folder = remote.mirrored(run_dir)
        shown, hidden = secret_variables(launch.env, launch.secrets)
        exports = shell_exports({k: moved(v) for k, v in shown.items()})
        kept = shell_exports({k: moved(v) for k, v in hidden.items()})
        venv = launch.image
        assert venv is not None
        command = (
            f"{exports}"
            f"cd {q(moved(str(launch.cwd)))} && "
            + (f". {q(folder)}/{_SECRETS} && " if kept else "")
            + f'export PATH={q(venv + "/bin")}:"$PATH" VIRTUAL_ENV={q(venv)} && '
            + moved(launch.command)
        )
        start = {
            "folder": folder,
            "command": command,
            "secrets": kept,  # a file only its user reads, removed when the run ends
            "followed": list(_FOLLOWED),
            "sent": list(_SENT),
        }
        return SshHandle(remote, _started(remote, launch, start))

    def stop_orphan(self, ident: str) -> bool:
        try:
            found = json.loads(ident)
            host = RemoteHost.from_json(found)
            pid = int(found["pid"])
        except (ValueError, KeyError, TypeError):
            return False
        try:
            conn = connect(host)
            alive = run(conn, f"kill -0 -- -{pid} 2>/dev/null && echo y || true", "probing")
            if alive.strip():
                run(conn, f"kill -KILL -- -{pid} 2>/dev/null || true", "stopping")
            conn.close()
            return bool(alive.strip())
        except ApplyError:
            return False


def _files(root: Path) -> list[Path]:
    """Every folder, file and symlink under `root` (or `root` itself, a file), without
    Python's bytecode caches; a symlink is not followed."""
    if not root.is_dir():
        return [root]
    found: list[Path] = [root]
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        if path.is_symlink() or path.is_file() or path.is_dir():
            found.append(path)
    return found


def _mirrored_link(remote: Remote, link: Path) -> str:
    """A symlink's target on the machine: a relative one as it is, an absolute one
    mirrored (`.sdk/mlform` → the package's mirrored folder)."""
    target = link.readlink()
    return str(target) if not target.is_absolute() else remote.mirrored(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def remote_environment(
    ctx: Context, host: RemoteHost, owner: str, name: str, version: str, log: Callable[[str], None]
) -> str:
    """The virtual environment of environment `name:version` on `host`: its folder."""
    # start-up: the image kind's reading of an environment only for a run elsewhere
    from mlform.kinds.image.kind import environment_build

    _, requirements, _ = environment_build(ctx, AssetRef(name, version), owner)
    with _said(f"building environment {name}:{version}", host):
        remote = Remote(host)
        try:
            venv = remote.environment(tuple(requirements), cache_dir() / "wheels", log)
        except BaseException:
            remote.close()
            raise
    _IDLE.put(remote)  # the run starts next, on the same connection
    return venv


TARGET = SshTarget()
