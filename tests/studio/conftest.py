"""The studio over a real workspace: the whole example applied as `./dev demo` applies it
(its training with its params, tags and learning curve, its pipeline, its image, its
endpoint and its monitor), the endpoint asked to score the iris rows and the monitor run
over what it captured, beside a job whose metric is a known curve; the studio serving it
as a user starts it (`mlform studio`, its own process); a real Chromium to look at it."""

from __future__ import annotations

import csv
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, stop_endpoints
from tests.ports import free_port

CURVE = """
import math, sys, time
import mlform

run = mlform.get_run()
rate = float(sys.argv[1])
run.log_params({"lr": rate, "optimizer": "sgd"})
run.set_tags({"team": "vision"})
for step in range(2000):
    run.log("loss", 5.0 if step == 1234 else math.exp(-rate * step), step=step)
run.log("final_score", 1 - math.exp(-rate * 2000))
print("curve done")
"""

SLOW = """
import sys, time
for i in range(int(sys.argv[1])):
    print(f"tick {i}", flush=True)
    time.sleep(0.2)
"""


@dataclass(frozen=True)
class Studio:
    root: Path
    url: str
    process: subprocess.Popen[str]


def mlform(root: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mlform.cli.main", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def score(root: Path, rows: list[list[float]]) -> None:
    """POST `rows` to the example's endpoint, 25 a request, as a client would."""
    shown = json.loads(mlform(root, "endpoints", "show", "iris", "--json"))
    port = int(str(shown["url"]).rsplit(":", 1)[1])
    key = mlform(root, "endpoints", "keys", "iris").splitlines()[0].removeprefix("primary: ")
    for start in range(0, len(rows), 25):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps({"data": rows[start : start + 25]})
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        connection.request("POST", "/score", body=body, headers=headers)
        answer = connection.getresponse()
        assert answer.status == 200, answer.read()
        connection.close()


def captured_rows(root: Path) -> int:
    """How many scored rows the deployment's capture has written (every second)."""
    import duckdb

    folder = root / ".mlform" / "datastore" / "captures" / "iris" / "blue"
    if not list(folder.glob("*/*.parquet")):
        return 0
    found = duckdb.sql(
        f"select sum(json_array_length(inputs)) from read_parquet('{folder}/*/*.parquet')"
    ).fetchall()
    return int(found[0][0] or 0)


def flowers(root: Path) -> list[list[float]]:
    with (root / "data" / "iris.csv").open() as rows:
        return [[float(v) for v in row[:4]] for row in list(csv.reader(rows))[1:]]


@pytest.fixture(scope="session")
def studio_root(tmp_path_factory: pytest.TempPathFactory, env_cache: Path) -> Iterator[Path]:
    """The example, all of it, applied (its endpoint on a free port), its endpoint asked
    to score the iris rows twice with its monitor run after each, beside two runs of a
    known curve (lr 0.01 and 0.002). Its servers are stopped after."""
    root = tmp_path_factory.mktemp("studio") / "iris"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlform"))
    endpoint = root / "endpoints" / "iris.yml"
    endpoint.write_text(endpoint.read_text().replace("port: 5080", f"port: {free_port()}"))
    (root / "curve").mkdir()
    (root / "curve" / "curve.py").write_text(CURVE)
    (root / "curve" / "slow.py").write_text(SLOW)
    for name, rate in (("curve-fast", "0.01"), ("curve-slow", "0.002")):
        (root / "runconfigs" / f"{name}.yml").write_text(
            f"code: ../curve\ncommand: python curve.py {rate}\nexperiment_name: curves\n"
        )
    (root / "runconfigs" / "ticking.yml").write_text(
        "code: ../curve\ncommand: python slow.py 150\nexperiment_name: ticking\ntrigger: manual\n"
    )
    os.environ["MLFORM_CACHE_DIR"] = str(env_cache)  # the session's: environments build once
    try:
        mlform(root, "apply", "--yes")
        rows = flowers(root)
        for times in (1, 2):
            score(root, rows)
            deadline = time.monotonic() + 30
            while captured_rows(root) < times * len(rows):
                assert time.monotonic() < deadline, "the endpoint did not capture its requests"
                time.sleep(0.2)
            mlform(root, "monitors", "run", "iris-drift")
        yield root
    finally:
        stop_endpoints(root)


@pytest.fixture(scope="session")
def studio(studio_root: Path) -> Iterator[Studio]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlform.cli.main", "studio", "--port", str(port)],
        cwd=studio_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/static/studio.css", timeout=5):
                break
        except (urllib.error.URLError, ConnectionError):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the studio did not start"
            time.sleep(0.2)
    yield Studio(studio_root, url, process)
    process.terminate()
    process.communicate(timeout=20)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    found = os.environ.get("MLFORM_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.skip("no Chromium here: scripts/browser-up.sh installs it")
    return found


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


def apply_ticking(studio: Studio) -> subprocess.Popen[str]:
    """`mlform apply --rerun runconfig/ticking` (a run of 30 s) started in the background,
    in a process group of its own (a Ctrl-C for it alone)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mlform.cli.main", "apply", "--yes", "--rerun", "runconfig/ticking"],
        cwd=studio.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
