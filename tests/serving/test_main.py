"""`python -m mlform.serving`: options from flags or environment, exit codes, isolation."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import ANY

import pytest

from tests.ports import free_port
from tests.serving.conftest import (
    call,
    server_env,
    serving,
    start_server,
    stop,
    wait_ready,
    write_deployment,
)

FAILING_INIT = """
    def init():
        raise ValueError("no model.pkl in the model folder")

    def run(data):
        return data
"""


def run_server(*args: str) -> subprocess.CompletedProcess[str]:
    """For runs that must end by themselves: an error before serving."""
    return subprocess.run(
        [sys.executable, "-m", "mlform.serving", *args],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_options_default_to_the_deployments_environment(tmp_path: Path) -> None:
    script, model = write_deployment(tmp_path)
    port = free_port()
    env = server_env(
        MLFORM_SCORING_SCRIPT=str(script),
        MLFORM_MODEL_DIR=str(model),
        MLFORM_HOST="127.0.0.1",
        MLFORM_PORT=str(port),
        MLFORM_DEPLOYMENT="iris-green",
    )
    log_path = tmp_path / "server.log"
    process = start_server(log=log_path, env=env)
    try:
        wait_ready(process, port, log_path)
        name = call(port, "GET", "/").json()
        scored = call(port, "POST", "/score", b'{"data": [5]}')
    finally:
        code = stop(process)
    assert name == {
        "name": "iris-green",
        "links": {
            "score": "/score",
            "health": "/health",
            "ready": "/ready",
            "metrics": "/metrics",
            "openapi": "/openapi.json",
        },
    }
    assert (scored.status, scored.body) == (200, b"[10]")
    # Shut down gracefully, then ended by the SIGTERM itself, as uvicorn does.
    assert code == -signal.SIGTERM
    log = log_path.read_text()
    assert f"Uvicorn running on http://127.0.0.1:{port}" in log
    assert "Finished server process" in log


def test_init_failing_exits_3_with_the_message_and_traceback(tmp_path: Path) -> None:
    script, model = write_deployment(tmp_path, FAILING_INIT)
    # Port 1 cannot be bound: init() must fail before the server tries to listen.
    ran = run_server("--script", str(script), "--model-dir", str(model), "--port", "1")
    lines = ran.stderr.splitlines()
    assert ran.returncode == 3
    assert lines[0] == (
        "mlform.serving: init() of score.py failed: ValueError: no model.pkl in the model folder"
    )
    assert lines[1] == "Traceback (most recent call last):"
    assert f'File "{script}", line 2, in init' in ran.stderr
    assert lines[-1] == "ValueError: no model.pkl in the model folder"
    assert "Uvicorn running" not in ran.stderr


def test_a_script_that_cannot_be_imported_exits_3(tmp_path: Path) -> None:
    script, model = write_deployment(tmp_path, "def run(data)\n")
    ran = run_server("--script", str(script), "--model-dir", str(model))
    assert ran.returncode == 3
    assert ran.stderr.splitlines()[0] == (
        "mlform.serving: importing score.py failed: SyntaxError: expected ':' (score.py, line 1)"
    )


def test_a_missing_script_exits_2(tmp_path: Path) -> None:
    ran = run_server("--script", str(tmp_path / "score.py"), "--model-dir", str(tmp_path))
    assert (ran.returncode, ran.stdout, ran.stderr) == (
        2,
        "",
        f"mlform.serving: scoring script {tmp_path / 'score.py'} does not exist\n",
    )


def test_no_script_at_all_exits_2(tmp_path: Path) -> None:
    ran = run_server("--model-dir", str(tmp_path))
    assert (ran.returncode, ran.stderr) == (
        2,
        "mlform.serving: no scoring script: pass --script PATH or set MLFORM_SCORING_SCRIPT\n",
    )


def test_a_missing_model_folder_exits_2(tmp_path: Path) -> None:
    script, _ = write_deployment(tmp_path)
    ran = run_server("--script", str(script), "--model-dir", str(tmp_path / "nope"))
    assert (ran.returncode, ran.stderr) == (
        2,
        f"mlform.serving: model folder {tmp_path / 'nope'} does not exist\n",
    )


def test_no_model_folder_at_all_exits_2(tmp_path: Path) -> None:
    script, _ = write_deployment(tmp_path)
    ran = run_server("--script", str(script))
    assert (ran.returncode, ran.stderr) == (
        2,
        "mlform.serving: no model folder: pass --model-dir DIR or set MLFORM_MODEL_DIR\n",
    )


def test_a_bad_port_exits_2(tmp_path: Path) -> None:
    ran = run_server("--port", "http")
    assert ran.returncode == 2
    assert ran.stderr.splitlines()[-1] == (
        "python -m mlform.serving: error: argument --port: 'http' is not a port number (1-65535)"
    )


def test_the_runtime_imports_none_of_mlforms_heavier_dependencies() -> None:
    # Deployment images hold the user's packages plus starlette and uvicorn, nothing more,
    # and of mlform the server and the masking of its output (`image.runtime_folder`).
    code = (
        "import sys\n"
        "import mlform.serving.app, mlform.serving.scoring, mlform.serving.__main__\n"
        "heavy = {'duckdb', 'yaml', 'jsonschema', 'pyarrow', 'fsspec', 'git', 'jinja2',\n"
        "         'numpy', 'pandas'}\n"
        "found = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        "mlform = sorted(m for m in sys.modules if m.startswith('mlform.')\n"
        "                and not m.startswith(('mlform.serving', 'mlform.masking')))\n"
        "print(found, mlform)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert ran.stdout == "[] []\n"


def test_keys_limits_and_the_access_log_come_from_the_environment(tmp_path: Path) -> None:
    script, model = write_deployment(tmp_path)
    key_hash = hashlib.sha256(b"s3cret").hexdigest()
    env = server_env(
        MLFORM_KEY_HASHES=f"{hashlib.sha256(b'old').hexdigest()},{key_hash}",
        MLFORM_REQUEST_TIMEOUT="2.5",
        MLFORM_MAX_CONCURRENT="4",
        MLFORM_MAX_QUEUE_WAIT="0.75",
        MLFORM_MAX_BODY="20",
    )
    key = {"Authorization": "Bearer s3cret"}
    args = ("--script", str(script), "--model-dir", str(model))
    with serving(*args, log=tmp_path / "server.log", env=env) as server:
        scored = server.call("POST", "/score", b'{"data": [5]}', {**key, "X-Request-Id": "r1"})
        keyless = server.call("POST", "/score", b'{"data": [5]}')
        large = server.call("POST", "/score", b'{"data": [1, 2, 3, 4]}', key)
        document = server.call("GET", "/openapi.json").json()
    assert (scored.status, scored.body) == (200, b"[10]")
    assert keyless.status == 401
    assert (large.status, large.json()) == (
        413,
        {
            "error": "the request body is larger than this deployment's limit of 20 bytes; "
            "send fewer rows per request",
            "status": 413,
        },
    )
    assert isinstance(document, dict)
    responses = document["paths"]["/score"]["post"]["responses"]
    assert sorted(responses) == [
        "200",
        "400",
        "401",
        "403",
        "413",
        "415",
        "429",
        "500",
        "503",
        "504",
    ]
    assert responses["504"]["description"] == "run() took longer than 2.5 s"
    assert responses["429"]["description"] == (
        "4 requests stayed in flight for longer than the queue wait of 750 ms; retry shortly"
    )
    # Bare JSON lines on stderr, between uvicorn's own.
    lines = [
        json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")
    ]
    assert [(line["status"], line["request_id"]) for line in lines[:2]] == [(200, "r1"), (401, ANY)]
    assert len(lines) == 3


def test_no_access_log_by_flag(tmp_path: Path) -> None:
    script, model = write_deployment(tmp_path)
    args = ("--script", str(script), "--model-dir", str(model), "--no-access-log")
    env = server_env(MLFORM_ACCESS_LOG="on")  # the flag wins
    with serving(*args, log=tmp_path / "server.log", env=env) as server:
        assert server.call("POST", "/score", b'{"data": [5]}').status == 200
    assert '{"ts"' not in server.log.read_text()


@pytest.mark.parametrize(
    ("env", "error"),
    [
        (
            {"MLFORM_KEY_HASHES": "s3cret"},
            "argument --key-hashes: 's3cret' is not a sha256 hex digest (64 hex digits); "
            "give each key's digest, as `printf %s KEY | sha256sum` prints it",
        ),
        (
            {"MLFORM_REQUEST_TIMEOUT": "0"},
            "argument --request-timeout: '0' is not a positive float",
        ),
        (
            {"MLFORM_MAX_CONCURRENT": "many"},
            "argument --max-concurrent: 'many' is not a positive int",
        ),
        ({"MLFORM_MAX_BODY": "-1"}, "argument --max-body: '-1' is not a positive int"),
        (
            {"MLFORM_MAX_QUEUE_WAIT": "soon"},
            "argument --max-queue-wait: 'soon' is not a number of seconds (0 or more)",
        ),
    ],
)
def test_bad_option_values_in_the_environment_exit_2(
    tmp_path: Path, env: dict[str, str], error: str
) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "mlform.serving"],
        env=server_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2
    assert ran.stderr.splitlines()[-1] == f"python -m mlform.serving: error: {error}"


def test_a_bad_access_log_switch_exits_2(tmp_path: Path) -> None:
    script, model = write_deployment(tmp_path)
    env = server_env(MLFORM_ACCESS_LOG="maybe")
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlform.serving",
            "--script",
            str(script),
            "--model-dir",
            str(model),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (ran.returncode, ran.stderr) == (
        2,
        "mlform.serving: MLFORM_ACCESS_LOG is 'maybe'; set it to on or off\n",
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_token_endpoint_takes_tokens_signed_with_the_key_in_its_file(
    tmp_path: Path, workers: str
) -> None:
    from mlform.serving.auth import mint
    from mlform.serving.keyring import KeyRing, TokenKey, dump

    script, model = write_deployment(tmp_path)
    key_file = tmp_path / "ring.json"
    key_file.write_text(dump(KeyRing(TokenKey("k1", bytes(range(32))))))
    env = server_env(
        MLFORM_AUTH_MODE="token",
        MLFORM_ENDPOINT="iris",
        MLFORM_KEY_HASHES=hashlib.sha256(b"s3cret").hexdigest(),
        MLFORM_TOKEN_KEY_FILE=str(key_file),
        MLFORM_WORKERS=workers,
    )
    args = ("--script", str(script), "--model-dir", str(model))
    body = b'{"data": [5]}'
    with serving(*args, log=tmp_path / "server.log", env=env) as server:
        token = mint(bytes(range(32)), "iris", 60, kid="k1")[0]
        signed = server.call("POST", "/score", body, {"Authorization": f"Bearer {token}"})
        by_digest = mint(hashlib.sha256(b"s3cret").digest(), "iris", 60, kid="k1")[0]
        forged = server.call("POST", "/score", body, {"Authorization": f"Bearer {by_digest}"})
        keyed = server.call("POST", "/score", body, {"Authorization": "Bearer s3cret"})
        # A rotated ring applies from the next request, in every worker.
        kept = TokenKey("k1", bytes(range(32)), keep_until=time.time() + 3600)
        partial = tmp_path / "ring.partial"
        partial.write_text(dump(KeyRing(TokenKey("k2", b"n" * 32), (kept,))))
        os.replace(partial, key_file)
        rotated = mint(b"n" * 32, "iris", 60, kid="k2")[0]
        after = {
            server.call("POST", "/score", body, {"Authorization": f"Bearer {held}"}).status
            for held in (token, rotated) * 4
        }
    assert (signed.status, signed.body) == (200, b"[10]")
    assert (forged.status, keyed.status) == (401, 401)
    assert after == {200}
    assert bytes(range(32)).hex() not in server.log.read_text()


def test_a_token_endpoint_without_its_key_file_exits_2(tmp_path: Path) -> None:
    script, model = write_deployment(tmp_path)
    args = ["--script", str(script), "--model-dir", str(model)]
    for extra, error in [
        (
            [],
            "MLFORM_AUTH_MODE is token but no token key is given: pass --token-key-file PATH "
            "or set MLFORM_TOKEN_KEY_FILE",
        ),
        (
            ["--token-key-file", str(tmp_path / "none.key")],
            f"cannot read the token key file {tmp_path / 'none.key'}: No such file or directory",
        ),
    ]:
        ran = subprocess.run(
            [sys.executable, "-m", "mlform.serving", *args, *extra],
            env=server_env(MLFORM_AUTH_MODE="token"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (ran.returncode, ran.stderr) == (2, f"mlform.serving: {error}\n")
