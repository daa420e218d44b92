"""Requests that arrive together share one run() call, and each gets its own answer."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlform.serving import batching
from mlform.serving.app import create_app
from mlform.serving.batching import Batcher, cut, rows_of
from mlform.serving.placement import Placement
from mlform.serving.scoring import BadPayload, ScoringScript, load_script
from tests.serving.conftest import call, serving_in_thread, write_deployment

# run() records the rows of each call; a row of -1 holds the call until the test releases
# it; a negative value is refused; a frame gets each row's first value doubled, by column.
BATCHED_PY = """
    import threading

    from mlform.serving.scoring import BadPayload

    MLFORM_PARSED_INPUT = True
    MLFORM_BATCHABLE = True
    calls = []
    frames = []
    started = threading.Event()
    release = threading.Event()
    answer = "rows"


    def run(data):
        if hasattr(data, "columns"):
            frames.append(data)
            calls.append(len(data))
            return data[data.columns[0]] * 2
        calls.append(len(data))
        if answer == "dict":
            return {"predictions": [row[0] * 2 for row in data]}
        if any(row[0] == -1 for row in data):
            started.set()
            release.wait(10)
        if any(row[0] < 0 and row[0] != -1 for row in data):
            raise BadPayload("no negative flowers")
        return [row[0] * 2 for row in data]
"""


def _script(tmp_path: Path, code: str = BATCHED_PY) -> ScoringScript:
    return load_script(*write_deployment(tmp_path, code))


def _batcher(script: ScoringScript) -> Batcher:
    placement = Placement()

    async def alone(payload: Any, request_id: str) -> bytes:
        return await placement.call(script.score_parsed, payload, request_id)

    return Batcher(script, placement, alone)


def _together(
    script: ScoringScript, bodies: list[Any], batcher: Batcher | None = None
) -> list[Any]:
    """`bodies` sent at the same moment to a Batcher: their answers, or errors, in order."""
    batcher = batcher or _batcher(script)

    async def main() -> list[Any]:
        encoded = [json.dumps(body).encode() for body in bodies]
        return await asyncio.gather(
            *(batcher.score(body, f"r{i}") for i, body in enumerate(encoded)),
            return_exceptions=True,
        )

    return [
        answer if isinstance(answer, Exception) else json.loads(answer)
        for answer in asyncio.run(main())
    ]


@pytest.mark.usefixtures("isolated_import")
def test_requests_that_arrive_together_share_one_call_and_get_their_own_rows(
    tmp_path: Path,
) -> None:
    script = _script(tmp_path)
    bodies = [{"data": [[1], [2]]}, {"data": [[3]]}, {"instances": [[9]]}, {"data": [[4]]}]
    answers = _together(script, bodies)
    assert answers == [[2, 4], [6], [18], [8]]
    # one call for the three "data" requests (4 rows), one for the "instances" one
    assert script.module.calls == [4, 1]


@pytest.mark.usefixtures("isolated_import")
def test_a_bad_request_among_others_gets_its_error_and_the_others_their_answers(
    tmp_path: Path,
) -> None:
    script = _script(tmp_path)
    answers = _together(script, [{"data": [[1]]}, {"data": [[-5]]}, {"data": [[3]]}])
    assert answers[0] == [2] and answers[2] == [6]
    assert isinstance(answers[1], BadPayload) and "no negative flowers" in str(answers[1])
    assert script.module.calls == [3, 1, 1, 1]  # the shared call failed: each alone


@pytest.mark.usefixtures("isolated_import")
def test_a_result_that_is_not_one_per_row_stops_batching_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = _script(tmp_path)
    script.module.answer = "dict"
    batcher = _batcher(script)
    with caplog.at_level(logging.WARNING, logger="mlform.serving"):
        answers = _together(script, [{"data": [[1]]}, {"data": [[2]]}], batcher)
    assert answers == [{"predictions": [2]}, {"predictions": [4]}]
    assert script.module.calls == [2, 1, 1]
    assert "returned a dict of length 1 for 2 rows, not one result per row" in caplog.text
    assert "scored one at a time from now on" in caplog.text
    script.module.calls.clear()
    _together(script, [{"data": [[1]]}, {"data": [[2]]}], batcher)
    assert script.module.calls == [1, 1]


@pytest.mark.usefixtures("isolated_import")
def test_frames_join_only_where_pandas_would_build_the_same_columns(tmp_path: Path) -> None:
    script = _script(tmp_path)
    split = {"columns": ["x", "y"], "data": [[1, "a"]]}
    answers = _together(
        script,
        [
            {"dataframe_split": split},
            {"dataframe_split": {"columns": ["x", "y"], "data": [[2, "b"], [3, "c"]]}},
            {"dataframe_split": {"columns": ["x", "y"], "data": [[4.5, "d"]]}},  # a float
            {"dataframe_split": {"columns": ["y", "x"], "data": [["e", 5]]}},  # other order
            {"dataframe_records": [{"x": 6, "y": "f"}]},
            {"dataframe_records": [{"x": 7, "y": "g"}]},
        ],
    )
    assert answers == [[2], [4, 6], [9.0], ["ee"], [12], [14]]
    assert sorted(script.module.calls) == [1, 1, 2, 3]
    shared = next(frame for frame in script.module.frames if len(frame) == 3)
    assert str(shared["x"].dtype) == "int64"  # as each request's own frame would have it
    assert list(shared.columns) == ["x", "y"]


@pytest.mark.usefixtures("isolated_import")
def test_a_request_that_cannot_join_is_read_as_json_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script(tmp_path)
    reads: list[bytes] = []
    read = batching.read_json
    monkeypatch.setattr(batching, "read_json", lambda body: reads.append(body) or read(body))
    many = {"data": [[i] for i in range(100)]}  # more rows than join others
    answers = _together(script, [many, {"data": [[1]]}])
    assert answers == [[i * 2 for i in range(100)], [2]]
    assert len(reads) == 2  # one per request: the lone one's JSON is handed on, not read again
    assert script.module.calls == [100, 1]


def test_only_rows_of_one_type_per_column_may_join() -> None:
    assert rows_of({"data": [[1, 2.0], [3, 4.0]]}) is not None
    assert rows_of({"inputs": [{"a": 1}, {"a": 2}]}) is not None
    refused = [
        {"data": [[1, 2.0], [3, 4]]},  # a column of floats and ints
        {"data": [[2**63]]},  # beyond int64: pandas would choose another dtype for it
        {"data": [[[1, 2]]]},  # a nested value
        {"data": [[1], [1, 2]]},  # ragged
        {"data": [[1]] * 65},  # enough rows to be worth a call of its own
        {"dataframe_records": [{"a": 1}] * 65},
        {"data": []},  # no rows: run() answers for none
        {"data": "text"},
        {"data": {"a": [1]}},
        {"dataframe_split": {"columns": ["a"], "data": [[1]], "index": [7]}},  # its own index
        {"dataframe_records": [{"a": 1}, {"b": 2}]},
        {"dataframe_records": [{"a": 1, "b": 2}, {"b": 2, "a": 1}]},  # another key order
        {"data": [[1]], "more": 1},
        [[1]],
    ]
    assert [rows_of(payload) for payload in refused] == [None] * len(refused)


def test_a_result_is_cut_into_each_requests_rows() -> None:
    assert cut([1, 2, 3], [1, 2]) == [[1], [2, 3]]
    assert [part.tolist() for part in cut(np.array([1, 2, 3]), [2, 1]) or []] == [[1, 2], [3]]
    series = pd.Series([1, 2, 3], index=[10, 20, 30])
    assert [part.tolist() for part in cut(series, [1, 2]) or []] == [[1], [2, 3]]
    frame = pd.DataFrame({"p": [1, 2, 3]})
    assert [part["p"].tolist() for part in cut(frame, [2, 1]) or []] == [[1, 2], [3]]
    for result in ({"p": [1, 2, 3]}, "abc", 3, None, [1, 2], {1, 2, 3}):
        assert cut(result, [1, 2]) is None


@pytest.mark.usefixtures("isolated_import")
def test_each_request_is_captured_with_its_own_rows(tmp_path: Path) -> None:
    script = _script(tmp_path)
    seen: list[tuple[Any, Any, str]] = []
    script.capture = lambda data, result, request_id: seen.append((data, result, request_id))
    _together(script, [{"data": [[1], [2]]}, {"data": [[3]]}])
    assert seen == [([[1], [2]], [2, 4], "r0"), ([[3]], [6], "r1")]


@pytest.mark.usefixtures("isolated_import")
def test_requests_read_while_a_call_runs_share_the_next_call(tmp_path: Path) -> None:
    """Through a real server: four clients send while run() holds the event loop; the
    four requests are read together afterwards and answered by one call."""
    script = _script(tmp_path)
    module = script.module
    with serving_in_thread(create_app(script)) as port:
        clients = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(4)]
        for client in clients:  # connected and idle: nothing left to accept later
            client.request("POST", "/score", b'{"data": [[0]]}', _JSON)
            assert client.getresponse().read() == b"[0]"
        module.calls.clear()
        held: list[int] = []
        holder = threading.Thread(
            target=lambda: held.append(call(port, "POST", "/score", b'{"data": [[-1]]}').status)
        )
        holder.start()
        try:
            assert module.started.wait(5), "the held request never reached run()"
            for i, client in enumerate(clients):  # sent while the loop is held
                client.request("POST", "/score", json.dumps({"data": [[i + 1]]}).encode(), _JSON)
        finally:
            module.release.set()
            holder.join(10)
        answers = [json.loads(client.getresponse().read()) for client in clients]
        for client in clients:
            client.close()
        metrics = call(port, "GET", "/metrics").body.decode()
    assert held == [200]
    assert answers == [[2], [4], [6], [8]]
    assert module.calls == [1, 4]
    assert "mlform_batched_requests_total 4\n" in metrics
    assert "mlform_batch_calls_total 1\n" in metrics


@pytest.mark.usefixtures("isolated_import")
def test_a_batched_request_past_the_timeout_gets_504_and_the_server_goes_on(
    tmp_path: Path,
) -> None:
    script = _script(tmp_path)
    with serving_in_thread(create_app(script, request_timeout=0.3)) as port:
        try:
            late = call(port, "POST", "/score", b'{"data": [[-1]]}')
        finally:
            script.module.release.set()
        after = call(port, "POST", "/score", b'{"data": [[5]]}')
    assert late.status == 504
    assert "request timeout of 0.3 s" in str(late.json())
    assert (after.status, after.json()) == (200, [10])


@pytest.mark.usefixtures("isolated_import")
def test_the_marker_without_the_parsed_mode_is_said_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code = "MLFORM_BATCHABLE = True\n\ndef run(raw_data):\n    return raw_data\n"
    script = _script(tmp_path, code)
    assert not script.batchable
    with caplog.at_level(logging.WARNING, logger="mlform.serving"):
        create_app(script)
    assert "sets MLFORM_BATCHABLE but not MLFORM_PARSED_INPUT = True" in caplog.text


_JSON = {"Content-Type": "application/json"}
