"""A no-change `mlform plan` with the state in Azure Blob Storage and in S3, against the
same plan with the state in a local file, on the applied 1,000-resource workspace of
plan_scale.

Target (issue acceptance): the remote plan takes at most 1.5 × the local one, with the
state already on this machine and unchanged, so that the store is only asked for its
ETag. Both sides are whole `mlform plan --detailed-exitcode` processes, timed wall
clock, taking turns, medians compared; every timed run must plan no changes.

The stores are the ones the tests use, started here on 127.0.0.1: Azurite (Microsoft's
emulator, from npm, installed into the user's cache on first use) and moto's S3 server.
A request to them costs a loopback round trip, where a cloud store costs a network one
(typically 5-30 ms within a region): add that to the remote figure for your setup.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import plan_scale

describe = "no-change `mlform plan`, state in Azure Blob / S3 against a local state file, 1k"

TARGET = 1.5  # remote plan ≤ 1.5 × local plan
SIZE = 1_000
FULL, QUICK = 7, 3  # timed runs per side
AZURITE = "azurite@3.35.0"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def run(*, quick: bool = False) -> bool:
    runs = QUICK if quick else FULL
    local = plan_scale.prepare(SIZE).root
    ok = True
    with _moto() as s3_env, _azurite() as az_env:
        for name, env, url in (
            ("S3 (moto)", s3_env, f"s3://{s3_env['BUCKET']}/bench/state.duckdb"),
            ("Azure Blob (Azurite)", az_env, f"az://{az_env['CONTAINER']}/bench/state.duckdb"),
        ):
            remote = _remote_copy(local, url, env)
            os.environ.update(env)
            try:
                plan_scale.settle(remote, SIZE)  # the read copy downloaded, as after a pull
                local_times, remote_times = [], []
                for _ in range(runs):  # taking turns
                    local_times.append(plan_scale.clean_plan(local, SIZE).seconds)
                    remote_times.append(plan_scale.clean_plan(remote, SIZE).seconds)
            except plan_scale.NotClean as err:
                print(f"   a timed plan must plan no changes, and this one did not. {err}")
                return False
            finally:
                for key in env:
                    os.environ.pop(key, None)
            lo, re_ = statistics.median(local_times), statistics.median(remote_times)
            ratio = math.ceil(re_ / lo * 100) / 100  # rounded towards a miss
            met = ratio <= TARGET
            ok = ok and met
            print(
                f"   {name:<22} remote {re_:.3f} s (min {min(remote_times):.3f})  local "
                f"{lo:.3f} s (min {min(local_times):.3f})  ratio {ratio:.2f} ≤ {TARGET}: "
                f"{'PASS' if met else 'MISS'}"
            )
    print(f"   whole `mlform plan` processes, {runs} runs each side, {SIZE:,} resources")
    return ok


def _remote_copy(local: Path, url: str, env: dict[str, str]) -> Path:
    """The applied workspace again, its state migrated to `url`."""
    root = plan_scale.WORK / "remote_state" / url.split("://")[0]
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(local, root, ignore=shutil.ignore_patterns("remote"))
    moved = subprocess.run(
        [sys.executable, "-m", "mlform.cli.main", "state", "migrate", "--to", url],
        cwd=root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if moved.returncode != 0:
        raise RuntimeError(f"state migrate failed: {moved.stderr}")
    ws = root / "workspace.yml"
    ws.write_text(ws.read_text().replace("state: .mlform/state.duckdb", f"state: {url}"))
    (root / ".mlform" / "state.duckdb").unlink()
    return root


@contextmanager
def _moto() -> Iterator[dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    endpoint = _announced(process, r"Running on (http://127\.0\.0\.1:\d+)")
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
        "BUCKET": f"b{uuid.uuid4().hex[:12]}",
    }
    import botocore.session

    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    client.create_bucket(Bucket=env["BUCKET"])
    try:
        yield env
    finally:
        process.terminate()
        process.wait()


@contextmanager
def _azurite() -> Iterator[dict[str, str]]:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "mlform-tests" / AZURITE.replace("@", "-")
    binary = folder / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), AZURITE],
            check=True,
            capture_output=True,
        )
    data = plan_scale.WORK / "remote_state" / "azurite"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    process = subprocess.Popen(
        [
            str(binary),
            *("--blobHost", "127.0.0.1", "--blobPort", "0", "--location", str(data)),
            *("--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = _announced(process, r"successfully listens on (http://127\.0\.0\.1:\d+)")
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={url}/devstoreaccount1;"
    )
    env = {"AZURE_STORAGE_CONNECTION_STRING": connection, "CONTAINER": f"c{uuid.uuid4().hex[:12]}"}
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(connection).create_container(env["CONTAINER"])
    try:
        yield env
    finally:
        process.terminate()
        process.wait()


def _announced(process: subprocess.Popen[str], pattern: str) -> str:
    """The address a server prints once it listens; then its output is drained."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            import threading

            threading.Thread(target=process.stdout.read, daemon=True).start()
            return found[1]
    raise RuntimeError("a storage server did not start:\n" + "".join(seen))


if __name__ == "__main__":
    sys.exit(0 if run(quick="--quick" in sys.argv) else 1)
