"""Real servers for the compute targets, started here: Debian's sshd with a second user
account, and a Ray cluster of a head and a worker node. The tests' fixtures
(`conftest.py`) and the compute benchmark both start them through these."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.ports import free_port

USER = "mlform-ssh"
SSHD = Path("/usr/sbin/sshd")


class Unavailable(Exception):
    """A server cannot be started here (a package missing, no root)."""


@dataclass(frozen=True)
class Sshd:
    port: int
    user: str
    key: Path  # the private key that logs in as `user`
    home: Path
    pid: int  # the listening sshd: killing it and its sessions drops every connection


def install_sshd() -> None:
    if SSHD.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable("sshd is missing (apt-get install openssh-server)")
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "openssh-server"],
        check=True,
        capture_output=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def _account() -> Path:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], check=True)
    # no password, but not locked: sshd lets a locked account in by no means
    subprocess.run(["usermod", "-p", "*", USER], check=True)
    return Path(pwd.getpwnam(USER).pw_dir)


@contextlib.contextmanager
def running_sshd(folder: Path) -> Iterator[Sshd]:
    """Debian's sshd on a free 127.0.0.1 port, letting in `USER` with a key made here."""
    if os.geteuid() != 0:
        raise Unavailable("a second user account for the SSH target needs root")
    install_sshd()
    home = _account()
    folder.mkdir(parents=True, exist_ok=True)
    key, host_key = folder / "client", folder / "host"
    for path in (key, host_key):
        path.unlink(missing_ok=True)
        path.with_suffix(".pub").unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    # added to the keys already there: another server of this session lets its own in
    authorized = ssh / "authorized_keys"
    known = authorized.read_text() if authorized.exists() else ""
    authorized.write_text(known + key.with_suffix(".pub").read_text())
    user = pwd.getpwnam(USER)
    for path in (ssh, ssh / "authorized_keys"):
        os.chown(path, user.pw_uid, user.pw_gid)
    (ssh / "authorized_keys").chmod(0o600)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"PidFile {folder / 'sshd.pid'}\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\nUsePAM no\nAllowUsers {USER}\n"
        "Subsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation folder
    server = subprocess.Popen(
        [str(SSHD), "-D", "-f", str(config), "-E", str(folder / "sshd.log")],
        stdin=subprocess.DEVNULL,
    )
    try:

        def listens() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        def failed() -> str:
            exited = server.poll() is not None
            return (folder / "sshd.log").read_text() if exited else "sshd did not start listening"

        _until(listens, [server], 20, 0.1, failed)
        yield Sshd(port, USER, key, home, server.pid)
    finally:
        server.terminate()
        server.wait(10)


@dataclass(frozen=True)
class RayCluster:
    address: str  # the job server's http address
    nodes: int


def _ray_node(ray: Path, folder: Path, *args: str) -> subprocess.Popen[bytes]:
    """One Ray node in the foreground (`--block`), in a process group of its own: ending
    the group ends the node and every process it started, and no other Ray on this
    machine (as `ray stop` would)."""
    with (folder / f"node-{len(list(folder.glob('node-*.log')))}.log").open("wb") as log:
        return _popen(ray, log, args)


def _popen(ray: Path, log: IO[bytes], args: tuple[str, ...]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(ray),
            "start",
            "--block",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--object-store-memory=100000000",
            f"--dashboard-agent-listen-port={free_port()}",
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # `python` on a node is the one Ray runs on, as where Ray is installed
        env={
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "PATH": f"{ray.parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        },
    )


@contextlib.contextmanager
def running_ray(nodes: int = 2) -> Iterator[RayCluster]:
    """A real Ray cluster on 127.0.0.1: a head (its job server on a port of its own) and
    `nodes` - 1 workers, each with 2 CPUs."""
    ray = Path(sys.executable).with_name("ray")
    if not ray.exists():
        raise Unavailable("Ray is missing (pip install 'mlform[ray]')")
    # short: Ray's sockets live under it, and a socket's path has at most 107 bytes
    folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port, dashboard = free_port(), free_port()
    started = [
        _ray_node(
            ray,
            folder,
            "--head",
            f"--port={port}",
            f"--temp-dir={folder}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={free_port()}",
        )
    ]
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_jobs(address, started, folder)
        for _ in range(nodes - 1):
            started.append(_ray_node(ray, folder, f"--address=127.0.0.1:{port}"))
        _wait_for_nodes(address, nodes, started, folder)
        _wait_for_agent(address, started, folder)
        yield RayCluster(address, nodes)
    finally:
        for node in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGTERM)
        for node in started:
            # `ray start --block` takes half a minute to end its node on SIGTERM; a test
            # cluster holds nothing worth waiting for
            try:
                node.wait(2)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.pid, signal.SIGKILL)
                node.wait(5)
        shutil.rmtree(folder, ignore_errors=True)


def _logs(folder: Path) -> str:
    logs = [*folder.glob("node-*.log"), *folder.glob("session_latest/logs/dashboard_agent.log")]
    return "\n".join(f"{p}:\n{p.read_text(errors='replace')[-3000:]}" for p in logs)


def _until(
    ready: Callable[[], bool],
    nodes: list[subprocess.Popen[bytes]],
    seconds: float,
    every: float,
    failed: Callable[[], str],
) -> None:
    """Ask `ready` every `every` seconds until it says yes; a node that exited or
    `seconds` gone by raise RuntimeError(failed())."""
    deadline = time.monotonic() + seconds
    while not ready():
        if any(n.poll() is not None for n in nodes) or time.monotonic() > deadline:
            raise RuntimeError(failed())
        time.sleep(every)


def _wait_for_jobs(address: str, nodes: list[subprocess.Popen[bytes]], folder: Path) -> None:
    def answers() -> bool:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{address}/api/version", timeout=2) as answer,
        ):
            return bool(answer.status == 200)
        return False

    _until(answers, nodes, 90, 0.3, lambda: "Ray's job server did not answer\n" + _logs(folder))


def _wait_for_nodes(
    address: str, count: int, nodes: list[subprocess.Popen[bytes]], folder: Path
) -> None:
    def joined() -> bool:
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(f"{address}/nodes?view=summary", timeout=2) as answer,
        ):
            summary = json.load(answer)["data"]["summary"]
            alive = [n for n in summary if n.get("raylet", {}).get("state") == "ALIVE"]
            return len(alive) >= count
        return False

    _until(joined, nodes, 90, 0.3, lambda: f"{count} Ray nodes did not join\n" + _logs(folder))


def _wait_for_agent(address: str, nodes: list[subprocess.Popen[bytes]], folder: Path) -> None:
    """Ray's job server hands each job to the head's job agent and answers 500 ("No
    available agent to submit job") until that agent has said where it listens; an agent
    that could not listen never does. A no-op job taken shows that it has."""
    submit = urllib.request.Request(
        f"{address}/api/jobs/",
        data=json.dumps({"entrypoint": "true"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    last = ""

    def takes() -> bool:
        nonlocal last
        try:
            with urllib.request.urlopen(submit, timeout=30):
                return True
        except urllib.error.HTTPError as err:
            last = f"{err.code} {err.read(500).decode(errors='replace')}"
        except OSError as err:
            last = str(err)
        return False

    _until(takes, nodes, 60, 0.5, lambda: f"Ray's head took no job ({last})\n" + _logs(folder))
