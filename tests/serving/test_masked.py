"""A server's output shows the secret values its environment names as ***: what the
scoring script prints or logs in init() and run(), split across writes or not, and what
its subprocesses write."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.serving.conftest import server_env, serving, write_deployment

SECRET = "db-pass-7c41e9a0"
URL = f"postgresql://scorer:{SECRET}@db.internal/features"

SCORE_PY = """
    import logging
    import os
    import subprocess
    import sys
    import time

    MLFORM_PARSED_INPUT = True
    logger = logging.getLogger("score")
    v = os.environ["DB_PASS"]


    def init():
        print("init: " + v[:5], end="", flush=True)
        time.sleep(0.2)
        print(v[5:], flush=True)
        logger.warning("connecting to %s", os.environ["DB_URL"])


    def run(data):
        print("run: " + v, flush=True)
        child = "import os; os.write(1, b'child: ' + os.environb[b'DB_PASS'] + b'\\\\n')"
        subprocess.run([sys.executable, "-c", child], check=True)
        return data
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_log_shows_secrets_as_stars(tmp_path: Path, workers: str) -> None:
    script, model = write_deployment(tmp_path, SCORE_PY)
    env = server_env(
        DB_PASS=SECRET,
        DB_URL=URL,
        MLFORM_SECRET_VARIABLES="DB_PASS,DB_URL[20:36]",
        MLFORM_WORKERS=workers,
        PYTHONUNBUFFERED="1",  # as local deployments run: print writes a line in two
    )
    log = tmp_path / "server.log"
    with serving("--script", str(script), "--model-dir", str(model), log=log, env=env) as server:
        scored = server.call("POST", "/score", b'{"data": [1]}')
        process = server.process
    assert (scored.status, scored.body) == (200, b"[1]")
    # as unmasked: one process ends by the SIGTERM that stopped it; uvicorn's supervisor
    # of several workers exits 0
    assert process.returncode == {"1": -signal.SIGTERM, "2": 0}[workers]
    text = log.read_text()
    n = int(workers)  # each worker process runs init(); one of them scores the request
    # whole lines, also where two workers write at once, each line in two pieces
    lines = text.splitlines(keepends=True)
    assert lines.count("init: ***\n") == n, text
    assert lines.count("connecting to postgresql://scorer:***@db.internal/features\n") == n
    assert (lines.count("run: ***\n"), lines.count("child: ***\n")) == (1, 1), text
    assert text.count("***") == 2 * n + 2
    for half in (SECRET[:5], SECRET[5:]):
        assert half not in text
    assert "Finished server process" in text  # what it wrote as it stopped is kept


def test_without_secret_variables_the_output_is_as_written(tmp_path: Path) -> None:
    script, model = write_deployment(tmp_path, SCORE_PY)
    env = server_env(DB_PASS=SECRET, DB_URL=URL)
    log = tmp_path / "server.log"
    with serving("--script", str(script), "--model-dir", str(model), log=log, env=env) as server:
        server.call("POST", "/score", b'{"data": [1]}')
    text = log.read_text()
    print(text)
    assert f"init: {SECRET}\n" in text
    assert f"run: {SECRET}\nchild: {SECRET}\n" in text
