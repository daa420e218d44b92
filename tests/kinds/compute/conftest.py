"""A real SSH server for the virtualmachine target: Debian's sshd on 127.0.0.1, started
once per session with its own host key, letting in a second user account (`mlform-ssh`,
a home of its own) with a key generated here. Installed with apt when missing, in CI;
elsewhere its tests skip without it (or without root, which a second account needs)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "mlform-ssh"
SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class Sshd:
    port: int
    user: str
    key: Path  # the private key that logs in as `user`
    home: Path


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


def _install() -> None:
    if SSHD.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _missing("sshd is missing (apt-get install openssh-server)")
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


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if os.geteuid() != 0:
        _missing("a second user account for the SSH tests needs root")
    _install()
    home = _account()
    folder = tmp_path_factory.mktemp("sshd")
    key, host_key = folder / "client", folder / "host"
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    user = pwd.getpwnam(USER)
    for path in (ssh, ssh / "authorized_keys"):
        os.chown(path, user.pw_uid, user.pw_gid)
    (ssh / "authorized_keys").chmod(0o600)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
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
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, (folder / "sshd.log").read_text()
            assert time.monotonic() < deadline, "sshd did not start listening"
            time.sleep(0.1)
        yield Sshd(port, USER, key, home)
    finally:
        server.terminate()
        server.wait(10)
