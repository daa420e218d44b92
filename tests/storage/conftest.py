"""A real HTTP server on 127.0.0.1 serving a temporary folder, for data behind URLs."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Served:
    folder: Path  # what is in it is served
    url: str  # http://127.0.0.1:PORT


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # pytest shows a test's output: keep request lines out of it


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_Quiet, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(folder, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


AZURITE = "azurite@3.35.0"  # 3.37 asks for Node 22
# Azurite's well-known development account (documented, not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _azurite_bin() -> Path | None:
    """Azurite's blob server, installed once with npm into the user's cache."""
    import fcntl
    import os
    import shutil
    import subprocess

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "mlform-tests" / AZURITE.replace("@", "-")
    binary = folder / "node_modules" / ".bin" / "azurite-blob"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("npm is needed for Azurite (apt-get install npm)")
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".{folder.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # test workers and worktrees install it once
        if not binary.exists():
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), AZURITE],
                check=True,
                capture_output=True,
            )
    return binary


@dataclass(frozen=True)
class Azurite:
    blob_url: str  # http://127.0.0.1:PORT/devstoreaccount1

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.blob_url};"
        )


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Microsoft's Azure Storage emulator, its blob service on a free port."""
    import re
    import subprocess

    binary = _azurite_bin()
    if binary is None:
        pytest.skip("npm is not installed here: Azurite cannot be installed")
    location = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--location",
            str(location),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # ends if Azurite exits
        seen.append(line)
        found = re.search(r"successfully listens on (http://127\.0\.0\.1:\d+)", line)
        if found:
            break
    else:
        process.wait()
        pytest.fail(f"Azurite did not start:\n{''.join(seen)}")
    try:
        yield Azurite(f"{found[1]}/{AZURITE_ACCOUNT}")
    finally:
        process.terminate()
        process.wait()
        process.stdout.close()
