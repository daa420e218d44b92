"""A run's output reaches its log with its secret values masked, whoever writes them."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlform.compute import Launch
from mlform.compute.local import LocalTarget

SECRET = "tok-5f3a9c1e77b2"

# The value printed in two halves a flush apart, logged on stderr, and written by a
# subprocess straight to file descriptor 1.
TRAIN_PY = """
    import logging
    import os
    import subprocess
    import sys
    import time

    v = os.environ["API_TOKEN"]
    print("epoch 1", flush=True)
    print("token=" + v[:5], end="", flush=True)
    time.sleep(0.2)
    print(v[5:], flush=True)
    logging.basicConfig(format="%(levelname)s %(message)s")
    logging.warning("connecting with %s", v)
    child = "import os; os.write(1, b'child ' + os.environb[b'API_TOKEN'] + b'\\\\n')"
    subprocess.run([sys.executable, "-c", child], check=True)
    print("done")
"""


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def run(tmp_path: Path, command: str, secrets: tuple[str, ...] = ()) -> tuple[int, str]:
    launch = Launch(
        command=command,
        cwd=tmp_path,
        env={**os.environ, "API_TOKEN": SECRET, "PYTHONUNBUFFERED": "1"},
        log=tmp_path / "logs" / "std_log.txt",
        secrets=secrets,
    )
    handle = LocalTarget().start(launch)
    deadline = time.monotonic() + 60  # bounds a hang; the run takes well under a second
    while (code := handle.poll()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if code is None:
        code = handle.stop()
    return code, launch.log.read_text(encoding="utf-8")


def test_a_secret_never_reaches_the_log_however_it_is_written(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(textwrap.dedent(TRAIN_PY), encoding="utf-8")
    code, log = run(tmp_path, f"{sys.executable} train.py", secrets=(SECRET,))
    assert (code, log) == (
        0,
        "epoch 1\ntoken=***\nWARNING connecting with ***\nchild ***\ndone\n",
    )


def test_without_secrets_the_output_is_copied_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(textwrap.dedent(TRAIN_PY), encoding="utf-8")
    code, log = run(tmp_path, f"{sys.executable} train.py")
    assert code == 0
    assert log == (
        f"epoch 1\ntoken={SECRET}\nWARNING connecting with {SECRET}\nchild {SECRET}\ndone\n"
    )


def test_output_without_a_final_newline_is_kept_whole(tmp_path: Path) -> None:
    code, log = run(tmp_path, "printf 'partial tok-5'; exit 3", secrets=(SECRET,))
    assert (code, log) == (3, "partial tok-5")
