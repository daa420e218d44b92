"""The virtualmachine target: a run on another machine over SSH (Azure ML's attached VM),
through `fabric`.

On the machine, under the user's `~/.mlform/`:

    blobs/<sha256>        every file sent, once: an unchanged file is never sent again
    venvs/<key>/          an environment, built from wheels this machine downloaded for
                          the remote's Python (the same wheels an image gets), once
    mirror/<local path>   what a run reads and writes, at its local path under mirror/

A run's folder (its snapshot, data inputs and the SDK's package) is mirrored there, each
file hard-linked from its blob, so the command line and every path it was given are the
local ones with `mirror/` in front. The command runs detached (`setsid nohup`), in a
process group of its own, from a session held open while it runs (`_started`), which
stops that group if the connection drops before it ends: nothing is left running that no one
follows. Its log and metrics are read back as they grow, and when it ends its outputs,
logs and run-protocol files are brought back into the local run folder, which the run
record then reads as a local run's. Stopping it signals its process group (SIGTERM, then
SIGKILL after 5 s). Secret variables travel in a file only the remote user
reads, sourced by the command's shell and removed when the run ends; its log shows them
as `***`.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import re
import secrets
import shlex
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mlform.cachedir import cache_dir
from mlform.compute import Launch, RemoteHost, said, secret_variables, shell_exports
from mlform.config.refs import AssetRef
from mlform.context import Context
from mlform.errors import ApplyError
from mlform.masking import Masker
from mlform.tracking import protocol

if TYPE_CHECKING:
    from fabric import Connection
    from paramiko import Channel

_GRACE_SECONDS = 5
q = shlex.quote  # every path in a command line: a workspace's path may hold spaces
_POLL_EVERY = 0.25  # seconds between two looks at a running remote command
_IDLE_FOR = 30.0  # seconds an open connection waits for the run that will use it
_HOME = ".mlform"
# what a run's folder does not bring back from the machine: what was sent to it
_SENT = ("snapshot", "inputs", ".sdk")
_FOLLOWED = (f"{protocol.LOGS}/std_log.txt", "metrics.csv")  # read back as they grow


def connect(host: RemoteHost) -> Connection:
    # start-up: fabric (and paramiko) only for a run on another machine
    from fabric import Connection

    conn = Connection(
        host.host,
        user=host.user,
        port=host.port,
        connect_timeout=15,
        connect_kwargs={
            "key_filename": str(host.key_file),
            "look_for_keys": False,
            "allow_agent": False,
        },
    )
    # a host the user's known_hosts records must show that key (paramiko refuses another)
    known = Path("~/.ssh/known_hosts").expanduser()
    if known.is_file():
        conn.client.load_system_host_keys(str(known))  # read, never written back
    return conn


def run(conn: Connection, command: str, what: str) -> str:
    """`command` in the remote user's shell; its output, or an ApplyError that says `what`
    failed, with the last lines it printed."""
    try:
        done = conn.run(command, hide=True, warn=True, in_stream=False)
    except Exception as err:  # paramiko's and the socket's, as they come
        where = f"{conn.user}@{conn.host}:{conn.port}"
        raise ApplyError(f"{what}: cannot reach {where}: {err}") from err
    if done.failed:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
        raise ApplyError(f"{what} on {conn.host} failed (exit code {done.exited}):\n{tail}")
    return str(done.stdout)


class Remote:
    """One machine over one connection: files sent by content, environments built."""

    def __init__(self, host: RemoteHost) -> None:
        self.host = host
        self.conn = connect(host)
        found = run(self.conn, f"mkdir -p ~/{_HOME}/blobs && cd ~/{_HOME} && pwd", "opening")
        self.home = found.strip()

    def close(self) -> None:
        self.conn.close()

    def mirrored(self, local: str | Path) -> str:
        """Where a local path is on the machine."""
        return f"{self.home}/mirror{Path(local)}"

    def send(
        self,
        files: Iterable[tuple[Path, str]],
        links: Mapping[str, str] | None = None,
        folders: Iterable[str] = (),
    ) -> int:
        """Put each (local file, remote path) in place, each (remote path → target)
        symlink, and each folder; a file's content goes over only when the machine has no
        blob of it. Return how many blobs were sent."""
        links = links or {}
        placed = [(local, remote, _sha256(local)) for local, remote in files]
        have = set(run(self.conn, f"ls {q(self.home)}/blobs", "listing blobs").split())
        sftp = self.conn.sftp()
        sent = 0
        for local, _, sha in placed:
            if sha in have:
                continue
            partial = f"{self.home}/blobs/.{sha}.{secrets.token_hex(4)}.partial"
            sftp.put(str(local), partial)
            sftp.chmod(partial, stat.S_IMODE(local.stat().st_mode) | 0o400)
            # over a blob another run sent meanwhile: the same content
            sftp.posix_rename(partial, f"{self.home}/blobs/{sha}")
            have.add(sha)
            sent += 1
        script = ["set -e"]
        made = {str(Path(remote).parent) for _, remote, _ in placed}
        made |= {str(Path(remote).parent) for remote in links} | set(folders)
        if made:
            script.append("mkdir -p " + " ".join(q(f) for f in sorted(made)))
        for _, remote, sha in placed:
            script.append(f"ln -f {q(self.home)}/blobs/{sha} {q(remote)}")
        for remote, target in links.items():
            script.append(f"ln -sfn {q(target)} {q(remote)}")
        self.script("\n".join(script), "placing the run's files")
        return sent

    def script(self, text: str, what: str) -> str:
        """Run a shell script on the machine (sent as a file: no command-line limit)."""
        # a name of its own: another run may send a script of the same text meanwhile
        name = f"{self.home}/.script-{secrets.token_hex(8)}.sh"
        self.conn.sftp().putfo(io.BytesIO(text.encode()), name)
        try:
            return run(self.conn, f"sh {q(name)}", what)
        finally:
            with contextlib.suppress(Exception):
                self.conn.sftp().remove(name)

    def environment(
        self, requirements: tuple[str, ...], cache: Path, log: Callable[[str], None]
    ) -> str:
        """A virtual environment with `requirements` on the machine (built from wheels
        this machine downloads for its Python, the first time): its folder."""
        # start-up: the wheel downloader only for a run on another machine
        from mlform.containers import wheels

        facts = json.loads(run(self.conn, f"python3 -c {shlex.quote(wheels.PROBE)}", "probing"))
        target = wheels.target_of(f"{self.host.host}'s python3", facts)
        folder = wheels.download(requirements, target, cache, log)
        key = folder.name
        venv = f"{self.home}/venvs/{key}"
        done = run(self.conn, f"test -e {q(venv)}/.complete && echo yes || true", "probing")
        if done.strip() == "yes":
            return venv
        log(f"environment on {self.host.host}: building {venv} ({len(requirements)} packages)")
        files = [p for p in sorted(folder.iterdir()) if p.is_file()]
        wheelhouse = f"{self.home}/wheels/{key}"
        self.send((p, f"{wheelhouse}/{p.name}") for p in files)
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
        self.script(
            f"set -e\nmkdir -p {q(self.home)}/venvs\n"
            f"flock {q(self.home)}/venvs/.{key}.lock sh -e -c {q(build)}\n",
            f"building the environment on {self.host.host}",
        )
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
    def __init__(
        self, remote: Remote, launch: Launch, pid: int, folder: str, lifeline: Channel
    ) -> None:
        self.remote = remote
        self.launch = launch
        self.pid = pid
        self.folder = folder  # the run folder on the machine
        self.lifeline = lifeline  # `_started`: the run lives as long as it is open
        self.ident = json.dumps({**remote.host.to_json(), "pid": pid})
        self.offsets = dict.fromkeys(_FOLLOWED, 0)
        self.masker = Masker(launch.secrets).stream()
        self.checked = 0.0
        self._code: int | None = None

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        if time.monotonic() - self.checked < _POLL_EVERY:
            return None
        self.checked = time.monotonic()
        try:
            with _said("following the run", self.remote.host):
                self._follow()
                code = self._exit_code("polling")
        except ApplyError as err:
            where = f"{self.remote.host.user}@{self.remote.host.host}:{self.remote.host.port}"
            raise ApplyError(
                f"lost the connection to {where} while the run ran ({err}); the machine "
                "stopped the run as the connection dropped"
            ) from err
        if not code.strip():
            return None
        with _said("following the run", self.remote.host):
            return self._end(int(code.strip()))

    def stop(self) -> int:
        if self._code is not None:
            return self._code
        with _said("stopping the run", self.remote.host):
            return self._stop()

    def _stop(self) -> int:
        group = f"-{self.pid}"
        run(self.remote.conn, f"kill -TERM -- {group} 2>/dev/null || true", "stopping")
        deadline = time.monotonic() + _GRACE_SECONDS
        while time.monotonic() < deadline:
            alive = run(self.remote.conn, f"kill -0 -- {group} 2>/dev/null && echo y || true", "")
            if not alive.strip():
                break
            time.sleep(0.2)
        run(self.remote.conn, f"kill -KILL -- {group} 2>/dev/null || true", "stopping")
        code = self._exit_code("stopping")
        return self._end(int(code.strip()) if code.strip() else -15)

    def _exit_code(self, what: str) -> str:
        """What the command's shell wrote when it ended; empty while it runs."""
        return run(self.remote.conn, f"cat {q(self.folder)}/.exit 2>/dev/null || true", what)

    def _follow(self) -> None:
        """Read what the log and the metrics gained since the last look."""
        sftp = self.remote.conn.sftp()
        local = self.launch.log.parent.parent
        for name, offset in self.offsets.items():
            try:
                with sftp.open(f"{self.folder}/{name}", "rb") as handle:
                    handle.seek(offset)
                    new = handle.read()
            except OSError:
                continue
            if not new:
                continue
            self.offsets[name] = offset + len(new)
            target = local / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shown = self.masker.feed(new) if name.startswith(protocol.LOGS) else new
            with target.open("ab") as out:
                out.write(shown)

    def _end(self, code: int) -> int:
        self._follow()
        with self.launch.log.open("ab") as out:
            out.write(self.masker.flush())
        self._bring_back()
        run(self.remote.conn, f"rm -f {q(self.folder)}/.secret-variables.sh", "cleaning up")
        self.lifeline.close()  # the run has ended: its lifeline finds `.exit` and stops nothing
        self.remote.close()
        self._code = code
        return code

    def _bring_back(self) -> None:
        """Copy what the run wrote on the machine into the local run folder."""
        local = self.launch.log.parent.parent
        listing = run(
            self.remote.conn,
            f"cd {q(self.folder)} && find . -type f "
            + " ".join(f"-not -path './{s}/*'" for s in _SENT)
            + " -not -name '.exit' -not -name '.secret-variables.sh'",
            "listing the run's files",
        )
        sftp = self.remote.conn.sftp()
        for line in listing.splitlines():
            relative = line.strip().removeprefix("./")
            if not relative or relative in _FOLLOWED:
                continue
            target = local / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            sftp.get(f"{self.folder}/{relative}", str(target))


def _started(remote: Remote, wrapper: str, folder: str) -> tuple[int, Channel]:
    """Start the run from a session that stays open while it runs (its lifeline): when
    the session closes before the run has ended (the connection dropped, sshd died, the
    apply was killed), the machine stops the run's process group, so nothing is left
    running that no one follows. Started from that session, the run has no moment
    without it. Return the group's id and the session."""
    script = f"{remote.home}/.start-{secrets.token_hex(8)}.sh"
    remote.conn.sftp().putfo(io.BytesIO(wrapper.encode()), script)
    done = f"{q(folder)}/.exit"
    channel: Channel = remote.conn.client.get_transport().open_session()
    channel.exec_command(
        f'pid=$(sh {q(script)}); rm -f {q(script)}; echo "$pid"; '
        'test -n "$pid" || exit 1; cat > /dev/null; '
        f'test -e {done} || {{ kill -TERM -- "-$pid"; sleep {_GRACE_SECONDS}; '
        f'test -e {done} || kill -KILL -- "-$pid"; }} 2>/dev/null'
    )
    said = channel.makefile("rb").readline().decode().strip()
    if not said.isdigit():
        channel.close()
        error = channel.makefile_stderr("rb").read().decode(errors="replace").strip()
        raise ApplyError(f"starting the run on {remote.host.host} failed: {error or said}")
    return int(said), channel


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
        links: dict[str, str] = {}
        folders: list[str] = []
        # mlform's own record of the snapshot stays here: the command never reads it, and
        # it changes with every file, which would be sent again each time one does
        kept_here = {run_dir / protocol.LOGS / "snapshot.json"}
        for root in launch.mounts:
            for path in _files(Path(root)):
                if path in kept_here:
                    continue
                if path.is_symlink():
                    links[remote.mirrored(path)] = _mirrored_link(remote, path)
                elif path.is_dir():
                    folders.append(remote.mirrored(path))
                else:
                    files.append((path, remote.mirrored(path)))
        sent = remote.send(files, links, folders)
        folder = remote.mirrored(run_dir)
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        with launch.log.open("a", encoding="utf-8") as log:
            log.write(
                f"mlform: {len(files)} files on {remote.host.host}, {sent} of them sent (the "
                "others were there)\n"
            )

        # every local path the run was given, at its place on the machine: in one pass, so
        # that a path already moved is not moved again
        roots = re.compile("|".join(re.escape(r) for r in sorted(launch.mounts, key=len)[::-1]))

        def moved(text: str) -> str:
            return roots.sub(lambda found: remote.mirrored(found[0]), text)

        shown, hidden = secret_variables(launch.env, launch.secrets)
        exports = shell_exports({k: moved(v) for k, v in shown.items()})
        kept = shell_exports({k: moved(v) for k, v in hidden.items()})
        if kept:  # a file only its user reads (before it holds anything), removed at the end
            with remote.conn.sftp().open(f"{folder}/.secret-variables.sh", "wb") as held:
                held.chmod(0o600)
                held.write(kept.encode())
        venv = launch.image
        assert venv is not None
        inner = (
            f"cd {q(moved(str(launch.cwd)))} && "
            + (f". {q(folder)}/.secret-variables.sh && " if kept else "")
            + f'export PATH={q(venv + "/bin")}:"$PATH" VIRTUAL_ENV={q(venv)} && '
            + moved(launch.command)
        )
        wrapper = (
            f"{exports}"
            f"mkdir -p {q(folder)}/{protocol.LOGS}\n"
            f"rm -f {q(folder)}/.exit\n"
            f"setsid nohup sh -c {q(f'({inner}); echo $? > {q(folder)}/.exit')} "
            f"> {q(folder)}/{protocol.LOGS}/std_log.txt 2>&1 < /dev/null &\n"
            "echo $!\n"
        )
        pid, lifeline = _started(remote, wrapper, folder)
        return SshHandle(remote, launch, pid, folder, lifeline)

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
