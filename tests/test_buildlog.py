"""Long build steps write their output to a log file; a failure quotes its tail."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from mlform.buildlog import LineLog, run_logged


def test_run_logged_keeps_the_output_in_the_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "step.log"
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    ticks: list[float] = []
    done = run_logged([sys.executable, "-c", script], log, waiting=ticks.append)
    assert done.returncode == 3
    assert log.read_text().splitlines()[1:] == ["out", "err"]
    assert log.read_text().startswith(f"$ {sys.executable} -c ")
    assert done.tail(1) == ["err"]


def test_line_log_writes_each_line_and_ticks(tmp_path: Path) -> None:
    ticks: list[float] = []
    with LineLog(tmp_path / "build.log", ticks.append) as write:
        write("Step 1/2 : FROM base\n")
        write("Step 2/2 : RUN pip install")
    written = (tmp_path / "build.log").read_text()
    assert written == "Step 1/2 : FROM base\nStep 2/2 : RUN pip install\n"
    assert len(ticks) == 2


def test_build_logs_are_their_owners_only_whatever_the_umask(tmp_path: Path) -> None:
    before = os.umask(0)
    try:
        run_logged([sys.executable, "-c", "print('index https://u:p@host/simple')"], tmp_path / "a")
        with LineLog(tmp_path / "b") as write:
            write("Step 1/1 : FROM base")
    finally:
        os.umask(before)
    assert [stat.S_IMODE((tmp_path / n).stat().st_mode) for n in "ab"] == [0o600, 0o600]


def test_run_logged_masks_the_secrets_it_is_given(tmp_path: Path) -> None:
    log = tmp_path / "pip.log"
    script = (
        "import sys, time; print('index https://u:tok-5f3a', end='', flush=True); "
        "time.sleep(0.2); print('9c1e77b2@host/simple'); print('tok-5f3a9c1e77b2', file=sys.stderr)"
    )
    done = run_logged([sys.executable, "-c", script], log, secrets=["tok-5f3a9c1e77b2"])
    assert done.returncode == 0
    assert log.read_text().splitlines()[1:] == ["index https://u:***@host/simple", "***"]
