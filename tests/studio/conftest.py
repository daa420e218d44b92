"""The studio over a real workspace: the example applied (its training, with its params,
tags and learning curve), a job whose metric is a known curve, and the studio serving it
as a user starts it (`mlform studio`, its own process); a real Chromium to look at it."""

from __future__ import annotations

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

from tests.conftest import EXAMPLE, free_port

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


def _apply(root: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mlform.cli.main", "apply", "--yes", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def studio_root(tmp_path_factory: pytest.TempPathFactory, env_cache: Path) -> Path:
    """The example (its training and its pipeline), applied, beside two runs of a known
    curve (lr 0.01 and 0.002)."""
    root = tmp_path_factory.mktemp("studio") / "iris"
    ignored = shutil.ignore_patterns(".mlform", "monitors", "schedules", "images", "endpoints")
    shutil.copytree(EXAMPLE, root, ignore=ignored)
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
    _apply(root)
    return root


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
