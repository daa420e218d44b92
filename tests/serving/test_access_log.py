"""The access log, one JSON line per POST /score, and the x-request-id it shares."""

from __future__ import annotations

import datetime
import json
import logging
import re
from pathlib import Path

import pytest

from mlform.serving.app import create_app
from mlform.serving.scoring import load_script
from tests.serving.conftest import call, serving_in_thread, write_deployment

FIELDS = ["ts", "method", "path", "status", "duration_ms", "bytes_in", "bytes_out", "request_id"]


@pytest.mark.usefixtures("isolated_import")
def test_each_scoring_request_logs_one_json_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(load_script(*write_deployment(tmp_path)), access_log=True)
    with caplog.at_level(logging.INFO, "mlform.serving.access"), serving_in_thread(app) as port:
        echoed = call(port, "POST", "/score", b'{"data": [1, 2]}', {"X-Request-Id": "abc-123"})
        made = call(port, "POST", "/score", b"{")
        call(port, "GET", "/health")  # not logged
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("access")]
    assert [list(line) for line in lines] == [FIELDS, FIELDS]
    first, second = lines
    assert echoed.headers["x-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{6}-[0-9]+", made.headers["x-request-id"])
    assert {k: first[k] for k in FIELDS[1:] if k != "duration_ms"} == {
        "method": "POST",
        "path": "/score",
        "status": 200,
        "bytes_in": 16,
        "bytes_out": 5,
        "request_id": "abc-123",
    }
    assert (second["status"], second["bytes_in"], second["bytes_out"]) == (400, 1, len(made.body))
    assert second["request_id"] == made.headers["x-request-id"]
    for line in lines:
        assert isinstance(line["duration_ms"], float) and 0 < line["duration_ms"] < 10_000
        ts = datetime.datetime.fromisoformat(line["ts"])
        assert ts.tzinfo == datetime.UTC
        assert abs(datetime.datetime.now(datetime.UTC) - ts) < datetime.timedelta(minutes=1)


@pytest.mark.usefixtures("isolated_import")
def test_without_the_access_log_nothing_is_logged_but_ids_are_still_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(load_script(*write_deployment(tmp_path)))
    with caplog.at_level(logging.DEBUG), serving_in_thread(app) as port:
        first = call(port, "POST", "/score", b'{"data": [1]}')
        second = call(port, "POST", "/score", b'{"data": [1]}')
    assert [r for r in caplog.records if r.name.startswith("mlform")] == []
    prefix, number = first.headers["x-request-id"].split("-")
    assert second.headers["x-request-id"] == f"{prefix}-{int(number) + 1}"
