"""Object stores the suite runs against, as users run mlform against them: Microsoft's
Azure Storage emulator (Azurite, from npm) and moto's S3 server (from PyPI), each started
once per session on 127.0.0.1. Neither may be skipped in CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

AZURITE = "azurite@3.35.0"  # 3.37 asks for Node 22
# Azurite's well-known development account (documented, not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _azurite_bin() -> Path | None:
    """Azurite's blob server, installed once with npm into the user's cache."""
    import fcntl
    import shutil

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
    found = _announced(process, r"successfully listens on (http://127\.0\.0\.1:\d+)", "Azurite")
    assert process.stdout is not None
    try:
        yield Azurite(f"{found[1]}/{AZURITE_ACCOUNT}")
    finally:
        process.terminate()
        process.wait()
        process.stdout.close()


def _announced(process: subprocess.Popen[str], pattern: str, what: str) -> re.Match[str]:
    """The line where a server says it listens; the test fails with its output if it
    exits first."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # ends if the server exits
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    process.wait()
    pytest.fail(f"{what} did not start:\n{''.join(seen)}")


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT

    @property
    def env(self) -> dict[str, str]:
        """What a user's shell would export to reach it (botocore and s3fs read these)."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def bucket(self, name: str) -> str:
        import botocore.session

        session = botocore.session.get_session()
        client = session.create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server: S3's API, conditional puts included, on a free port."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("moto[server] is needed for the S3 tests (pip install 'moto[server]')")
        pytest.skip("moto[server] is not installed here")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    found = _announced(process, r"Running on (http://127\.0\.0\.1:\d+)", "moto's S3 server")
    assert process.stdout is not None
    drain = threading.Thread(target=process.stdout.read, daemon=True)
    drain.start()  # its request log must not fill the pipe and stall it
    try:
        yield S3Server(found[1])
    finally:
        process.terminate()
        process.wait()
        drain.join()
        process.stdout.close()
