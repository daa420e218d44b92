"""The scoring server over real HTTP: what clients see, and what the log keeps."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlform.serving.app import MAX_BODY, create_app
from mlform.serving.scoring import import_script, load_script
from tests.serving.conftest import Server, call, serving, serving_in_thread, write_deployment

KEYS = '"data", "dataframe_split", "dataframe_records", "instances", "inputs"'
ROUTES = "POST /score, GET /health, GET /ready, GET /metrics, GET /openapi.json and GET /"
TOO_LARGE = (
    b'{"error":"the request body is larger than this deployment\'s limit of %d bytes; '
    b'send fewer rows per request","status":413}'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("deployment")
    script, model = write_deployment(folder)
    args = ("--script", str(script), "--model-dir", str(model), "--name", "iris-blue")
    with serving(*args, log=folder / "server.log") as running:
        yield running


def score(server: Server, body: bytes) -> tuple[int, bytes]:
    reply = server.call("POST", "/score", body, {"Content-Type": "application/json"})
    assert reply.headers["content-type"] == "application/json"
    return reply.status, reply.body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"data": [1, 2]}', b"[2,4]"),
        (b'{"instances": [1.5]}', b"[3.0]"),
        (b'{"inputs": [3]}', b"[6]"),
        (
            b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}',
            b'[{"a":2,"b":4},{"a":6,"b":8}]',
        ),
        (b'{"dataframe_records": [{"a": 1, "b": 2.5}]}', b'[{"a":2,"b":5.0}]'),
    ],
)
def test_score_runs_the_script_on_each_payload_shape(
    server: Server, body: bytes, expected: bytes
) -> None:
    assert score(server, body) == (200, expected)


def test_malformed_json_is_400(server: Server) -> None:
    assert score(server, b'{"data": [1,') == (
        400,
        b'{"error":"the request body is not valid JSON: Expecting value: line 1 column 13 '
        b'(char 12)","status":400}',
    )


def test_unknown_payload_keys_are_400_naming_the_accepted_ones(server: Server) -> None:
    status, body = score(server, b'{"rows": [1]}')
    assert status == 400
    assert json.loads(body) == {
        "error": f"the request body must be a JSON object with exactly one of the keys {KEYS}; "
        'got keys "rows"',
        "status": 400,
    }


def test_run_raising_is_500_without_details_while_the_log_has_the_traceback(
    server: Server,
) -> None:
    status, body = score(server, b'{"data": "boom"}')
    assert (status, body) == (
        500,
        b'{"error":"the scoring script raised ValueError; see the deployment\'s log","status":500}',
    )
    assert b"Traceback" not in body and b"secret" not in body
    log = server.log.read_text()
    logged = "ERROR:    run() of score.py raised ValueError\nTraceback (most recent call last):\n"
    assert logged in log
    assert "ValueError: secret detail: boom\n" in log


def test_a_body_declared_larger_than_the_limit_is_413_unread(server: Server) -> None:
    # Only the header is sent: the server must answer from Content-Length alone.
    reply = server.call("POST", "/score", None, {"Content-Length": str(MAX_BODY + 1)})
    assert (reply.status, reply.body) == (413, TOO_LARGE % MAX_BODY)


def test_a_chunked_body_larger_than_the_limit_is_413(server: Server) -> None:
    chunks = [b"x" * (1024 * 1024)] * 10 + [b"x"]
    reply = server.call("POST", "/score", iter(chunks))
    assert (reply.status, reply.body) == (413, TOO_LARGE % MAX_BODY)


def test_health_and_ready(server: Server) -> None:
    health = server.call("GET", "/health")
    ready = server.call("GET", "/ready")
    assert (health.status, health.body) == (200, b'{"status":"alive"}')
    assert (ready.status, ready.body) == (200, b'{"status":"ready"}')


def test_root_names_the_deployment_and_links_the_routes(server: Server) -> None:
    reply = server.call("GET", "/")
    assert (reply.status, reply.json()) == (
        200,
        {
            "name": "iris-blue",
            "links": {
                "score": "/score",
                "health": "/health",
                "ready": "/ready",
                "metrics": "/metrics",
                "openapi": "/openapi.json",
            },
        },
    )


def test_openapi_document_describes_the_routes(server: Server) -> None:
    reply = server.call("GET", "/openapi.json")
    document = reply.json()
    assert reply.status == 200
    assert isinstance(document, dict)
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "iris-blue scoring API", "version": "1"}
    assert sorted(document["paths"]) == [
        "/",
        "/health",
        "/metrics",
        "/openapi.json",
        "/ready",
        "/score",
    ]
    post = document["paths"]["/score"]["post"]
    assert sorted(post["responses"]) == ["200", "400", "413", "415", "500", "503"]
    shapes = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert [shape["required"] for shape in shapes] == [
        ["data"],
        ["dataframe_split"],
        ["dataframe_records"],
        ["instances"],
        ["inputs"],
    ]
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "status"]
    # No keys, timeout or concurrency limit on this server: none of their answers.
    assert "security" not in post
    assert "securitySchemes" not in document["components"]


def test_unknown_paths_are_404_as_json(server: Server) -> None:
    reply = server.call("GET", "/predict")
    assert (reply.status, reply.json()) == (
        404,
        {"error": f"no route for GET /predict; this server has {ROUTES}", "status": 404},
    )


def test_wrong_methods_are_405_as_json(server: Server) -> None:
    reply = server.call("GET", "/score")
    assert (reply.status, reply.headers["allow"], reply.json()) == (
        405,
        "POST",
        {"error": "GET is not allowed on /score; use POST", "status": 405},
    )


# Apps __main__ never makes: a script whose init() has not run, a small body limit.


@pytest.mark.usefixtures("isolated_import")
def test_before_init_ready_and_score_are_503(tmp_path: Path) -> None:
    script = import_script(*write_deployment(tmp_path))
    with serving_in_thread(create_app(script)) as port:
        ready = call(port, "GET", "/ready")
        scored = call(port, "POST", "/score", b'{"data": [1]}')
        health = call(port, "GET", "/health")
    assert (ready.status, ready.body) == (503, b'{"status":"not ready"}')
    assert (scored.status, scored.json()) == (
        503,
        {"error": "score.py is not ready: its init() has not completed", "status": 503},
    )
    assert (health.status, health.body) == (200, b'{"status":"alive"}')


@pytest.mark.usefixtures("isolated_import")
def test_the_body_limit_counts_bytes_exactly(tmp_path: Path) -> None:
    body = b'{"data":[1,2,3]}'
    app = create_app(load_script(*write_deployment(tmp_path)), max_body=len(body))
    with serving_in_thread(app) as port:
        at_limit = call(port, "POST", "/score", body)
        declared = call(port, "POST", "/score", body + b" ")
        chunked = call(port, "POST", "/score", iter([body[:10], body[10:], b" "]))
    assert (at_limit.status, at_limit.body) == (200, b"[2,4,6]")
    assert (declared.status, declared.body) == (413, TOO_LARGE % len(body))
    assert (chunked.status, chunked.body) == (413, TOO_LARGE % len(body))


@pytest.mark.usefixtures("isolated_import")
def test_a_result_json_cannot_hold_is_500_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code = "def run(data):\n    return object()\n"
    app = create_app(load_script(*write_deployment(tmp_path, code)))
    with caplog.at_level(logging.ERROR, "mlform.serving"), serving_in_thread(app) as port:
        reply = call(port, "POST", "/score", b'{"data": 1}')
    message = (
        "the scoring script's run() returned a value that cannot be encoded as JSON; return "
        "lists, dicts, numbers, strings, numpy arrays or pandas DataFrames"
    )
    assert (reply.status, reply.json()) == (500, {"error": message, "status": 500})
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("mlform.serving", f"{message} (score.py)")
    ]
    assert caplog.records[0].exc_info is not None
