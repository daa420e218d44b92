"""A scoring script and model as a deployment holds them, and real servers to call."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from mlform.serving.scoring import SCRIPT_MODULE
from tests.ports import free_port

# init() loads a JSON "model" from MLFORM_MODEL_DIR; run() doubles numbers, or raises
# when given a string (with a message that must never reach a client). It asks for the
# parsed payload (mlform's mode), so a DataFrame or rows arrive, not the body's text.
SCORE_PY = """
    import json
    import os
    from pathlib import Path

    MLFORM_PARSED_INPUT = True
    factor = None


    def init():
        global factor
        model = Path(os.environ["MLFORM_MODEL_DIR"]) / "model.json"
        factor = json.loads(model.read_text())["factor"]


    def run(data):
        if isinstance(data, str):
            raise ValueError("secret detail: " + data)
        if hasattr(data, "columns"):  # a pandas DataFrame
            return data * factor
        return [x * factor for x in data]
"""

# run() waits until the test sets `release`, having set `started`: a run as slow as a
# test needs, without sleeping. Only for scripts imported into the test's process.
SLOW_PY = """
    import threading

    MLFORM_PARSED_INPUT = True
    started = threading.Event()
    release = threading.Event()


    def run(data):
        started.set()
        release.wait(10)
        return data
"""

STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> object:
        return json.loads(self.body)


def write_deployment(folder: Path, code: str = SCORE_PY) -> tuple[Path, Path]:
    """`folder/score.py` and `folder/model/model.json`; returns (script, model folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "score.py"
    script.write_text(textwrap.dedent(code).lstrip("\n"), encoding="utf-8")
    model = folder / "model"
    model.mkdir(exist_ok=True)
    (model / "model.json").write_text('{"factor": 2}', encoding="utf-8")
    return script, model


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One HTTP request to 127.0.0.1:`port`; an iterable body is sent chunked. A POST
    says its body is JSON unless `headers` name another Content-Type."""
    headers = dict(headers or {})
    if method == "POST" and "content-type" not in {key.lower() for key in headers}:
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        content = response.read()
        found = {key.lower(): value for key, value in response.getheaders()}
        return Reply(response.status, content, found)
    finally:
        conn.close()


def server_env(**extra: str) -> dict[str, str]:
    """This environment less any deployment's variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFORM_", "AZUREML_"))}
    return {**env, **extra}


def start_server(
    *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m mlform.serving ARGS…`, its stdout and stderr going to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mlform.serving", *args],
            env=env if env is not None else server_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if call(port, "GET", "/ready").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"the server was not ready after {STARTUP_TIMEOUT}s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as a container runtime stops it; killed if it hangs. Returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass(frozen=True)
class Server:
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def call(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        return call(self.port, method, path, body, headers)


@contextmanager
def serving(*args: str, log: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A real server from `python -m mlform.serving ARGS… --port P`, stopped on exit."""
    port = free_port()
    process = start_server(*args, "--port", str(port), log=log, env=env)
    try:
        wait_ready(process, port, log)
        yield Server(port, log, process)
    finally:
        stop(process)


@contextmanager
def serving_in_thread(app: Starlette) -> Iterator[int]:
    """`app` on a real uvicorn server in this process, for apps `__main__` cannot make."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http="h11", loop="asyncio", log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def isolated_import(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what importing a scoring script in this process changes: env, sys.path, modules."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("MLFORM_MODEL_DIR", "AZUREML_MODEL_DIR"):
        monkeypatch.setenv(name, "")  # recorded now, so restored (or removed) afterwards
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name == SCRIPT_MODULE or name.startswith("score_"):
            del sys.modules[name]
