"""`--workers N` (a deployment's instance_count): N processes serve one port, each with
the script loaded and every option passed on."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.ports import free_port

SCRIPT = """\
import os


def init():
    pass

def run(data):
    return os.getpid()
"""


def test_workers_share_the_port_and_keep_the_options(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(SCRIPT)
    (tmp_path / "model").mkdir()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlform.serving",
            "--workers",
            "2",
            "--port",
            str(port),
            "--script",
            str(tmp_path / "score.py"),
            "--model-dir",
            str(tmp_path / "model"),
            "--max-body",
            "100",
            "--no-access-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                connection.request("POST", "/score", body=b'{"data": 1}')
                response = connection.getresponse()
                if response.status == 200:
                    pids.add(json.loads(response.read()))
            except OSError:
                time.sleep(0.2)
            finally:
                connection.close()
        assert len(pids) == 2
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("POST", "/score", body=b'{"data": "' + b"x" * 200 + b'"}')
            assert connection.getresponse().status == 413  # --max-body reached the workers
        finally:
            connection.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=30)
