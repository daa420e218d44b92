"""What POST /score takes: JSON content types (as Azure ML's inference server), any text
for a raw run(), and JSON nested within the parser's reach."""

from __future__ import annotations

import http.client
import json
import logging
from pathlib import Path

import pytest

from mlform.serving.app import create_app
from mlform.serving.scoring import MAX_NESTING, load_script
from tests.serving.conftest import Reply, call, serving_in_thread, write_deployment

ECHO_PY = "def run(raw_data):\n    return raw_data\n"
NOT_JSON = (
    b'{"error":"the request body must be JSON, sent with \\"Content-Type: application/json\\" '
    b'(%s)","status":415}'
)
TOO_DEEP = (
    b'{"error":"the request body nests JSON arrays and objects too deeply to parse; this '
    b'server accepts up to 500 levels","status":400}'
)


def nested(levels: int) -> bytes:
    return b'{"data": ' + b"[" * levels + b"]" * levels + b"}"


def post_without_type(port: int, body: bytes) -> Reply:
    """A POST with no Content-Type at all (http.client adds none)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/score", body=body)
        response = conn.getresponse()
        return Reply(response.status, response.read(), dict(response.getheaders()))
    finally:
        conn.close()


@pytest.mark.usefixtures("isolated_import")
def test_a_parsed_run_takes_json_types_only(tmp_path: Path) -> None:
    app = create_app(load_script(*write_deployment(tmp_path)))
    body = b'{"data": [1]}'
    with serving_in_thread(app) as port:
        accepted = [
            call(port, "POST", "/score", body, {"Content-Type": kind}).status
            for kind in (
                "application/json",
                "application/json; charset=utf-8",
                "Application/JSON ;charset=UTF-8",
                "application/vnd.api+json",
            )
        ]
        plain = call(port, "POST", "/score", body, {"Content-Type": "text/plain"})
        form = call(
            port, "POST", "/score", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        untyped = post_without_type(port, body)
        document = call(port, "GET", "/openapi.json").json()
    assert accepted == [200, 200, 200, 200]
    assert (plain.status, plain.body) == (415, NOT_JSON % b"got 'text/plain'")
    assert (form.status, form.body) == (
        415,
        NOT_JSON % b"got 'application/x-www-form-urlencoded'",
    )
    assert (untyped.status, untyped.body) == (415, NOT_JSON % b"it has none")
    assert isinstance(document, dict)
    responses = document["paths"]["/score"]["post"]["responses"]
    assert responses["415"]["description"] == "the body is not sent as JSON"


@pytest.mark.usefixtures("isolated_import")
def test_a_raw_run_gets_the_text_whatever_its_type(tmp_path: Path) -> None:
    # Azure ML's inference server decodes the body as UTF-8 for a raw run() and checks
    # the Content-Type only when it parses JSON for run() (a schema-decorated one).
    app = create_app(load_script(*write_deployment(tmp_path, ECHO_PY)))
    with serving_in_thread(app) as port:
        plain = call(port, "POST", "/score", b"hello", {"Content-Type": "text/plain"})
        untyped = post_without_type(port, b"a,b\n1,2\n")
        document = call(port, "GET", "/openapi.json").json()
    assert (plain.status, plain.body) == (200, b'"hello"')
    assert (untyped.status, untyped.body) == (200, b'"a,b\\n1,2\\n"')
    assert isinstance(document, dict)
    assert "415" not in document["paths"]["/score"]["post"]["responses"]


@pytest.mark.usefixtures("isolated_import")
def test_json_nested_past_the_parser_is_400_naming_the_limit_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        load_script(*write_deployment(tmp_path, "MLFORM_PARSED_INPUT = True\n" + ECHO_PY)),
        access_log=True,
    )
    with caplog.at_level(logging.INFO, "mlform.serving"), serving_in_thread(app) as port:
        deepest = call(port, "POST", "/score", nested(MAX_NESTING - 1))
        too_deep = call(port, "POST", "/score", nested(100_000))
    assert deepest.status == 200
    assert deepest.body == b"[" * (MAX_NESTING - 1) + b"]" * (MAX_NESTING - 1)
    assert (too_deep.status, too_deep.body) == (400, TOO_DEEP)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]
    assert [line["status"] for line in lines] == [200, 400]
    assert [r.levelname for r in caplog.records if not r.name.endswith("access")] == []


@pytest.mark.usefixtures("isolated_import")
def test_a_result_nested_past_the_encoder_is_500_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code = (
        "def run(raw_data):\n"
        "    deep = []\n"
        "    for _ in range(100_000):\n"
        "        deep = [deep]\n"
        "    return deep\n"
    )
    app = create_app(load_script(*write_deployment(tmp_path, code)), access_log=True)
    with caplog.at_level(logging.INFO, "mlform.serving"), serving_in_thread(app) as port:
        reply = call(port, "POST", "/score", b"{}")
    assert reply.status == 500
    assert b"cannot be encoded as JSON" in reply.body
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]
    assert [line["status"] for line in lines] == [500]
