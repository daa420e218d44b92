"""The request timeout (504), and the concurrency limit with its queue (429), over real HTTP."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mlform.serving.app import create_app
from mlform.serving.scoring import ScoringScript, load_script
from tests.serving.conftest import SLOW_PY, Reply, call, serving_in_thread, write_deployment

TIMED_OUT = (
    b'{"error":"the scoring script did not answer within this deployment\'s request timeout '
    b'of 0.3 s; send fewer rows per request, or raise the timeout","status":504}'
)
BUSY = (
    b'{"error":"this deployment is already answering its limit of 1 concurrent requests, '
    b"and none ended within its queue wait of 200 ms; retry shortly, or raise the limit "
    b"(max_concurrent_requests_per_instance) or the wait (max_queue_wait_ms), or add "
    b'instances","status":429}'
)
# run() notes how many calls overlap, and takes a moment: a burst queues behind it.
COUNTING_PY = """
    import threading
    import time

    MLFORM_PARSED_INPUT = True
    lock = threading.Lock()
    running = 0
    most = 0


    def run(data):
        global running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return data
"""


def slow_script(folder: Path) -> tuple[ScoringScript, Any]:
    """The SLOW_PY script, loaded in this process, and its module (for its events)."""
    script = load_script(*write_deployment(folder, SLOW_PY))
    return script, script.module


@pytest.mark.usefixtures("isolated_import")
def test_a_run_past_the_timeout_is_504_and_the_server_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script, module = slow_script(tmp_path)
    app = create_app(script, request_timeout=0.3)
    with caplog.at_level(logging.WARNING, "mlform.serving"), serving_in_thread(app) as port:
        started = time.monotonic()
        late = call(port, "POST", "/score", b'{"data": [1]}')
        waited = time.monotonic() - started
        module.release.set()  # the abandoned run() ends; the next one does not wait
        prompt = call(port, "POST", "/score", b'{"data": [2]}')
        document = call(port, "GET", "/openapi.json").json()
    assert (late.status, late.body) == (504, TIMED_OUT)
    assert 0.3 <= waited < 5
    assert (prompt.status, prompt.body) == (200, b"[2]")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "run() of score.py passed the request timeout; it keeps running")
    ]
    assert isinstance(document, dict)
    responses = document["paths"]["/score"]["post"]["responses"]
    assert responses["504"]["description"] == "run() took longer than 0.3 s"
    assert "429" not in responses


@pytest.mark.usefixtures("isolated_import")
def test_a_run_within_the_timeout_answers_as_usual(tmp_path: Path) -> None:
    app = create_app(load_script(*write_deployment(tmp_path)), request_timeout=5)
    with serving_in_thread(app) as port:
        good = call(port, "POST", "/score", b'{"data": [4]}')
        failed = call(port, "POST", "/score", b'{"data": "boom"}')
    assert (good.status, good.body) == (200, b"[8]")
    assert failed.status == 500


@pytest.mark.usefixtures("isolated_import")
def test_a_burst_beyond_max_concurrent_queues_and_all_succeed(tmp_path: Path) -> None:
    script = load_script(*write_deployment(tmp_path, COUNTING_PY))
    app = create_app(script, max_concurrent=1, max_queue_wait=60)
    with serving_in_thread(app) as port, ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(lambda n: call(port, "POST", "/score", b'{"data": [%d]}' % n), range(16))
        )
    assert [(r.status, r.body) for r in replies] == [(200, b"[%d]" % n) for n in range(16)]
    assert script.module.most == 1


@pytest.mark.usefixtures("isolated_import")
def test_requests_that_wait_past_the_queue_wait_are_429(tmp_path: Path) -> None:
    script, module = slow_script(tmp_path)
    app = create_app(script, max_concurrent=1, max_queue_wait=0.2)
    first: list[Reply] = []
    with serving_in_thread(app) as port:
        slow = threading.Thread(
            target=lambda: first.append(call(port, "POST", "/score", b'{"data": [1]}'))
        )
        slow.start()
        try:
            assert module.started.wait(5), "the first request never reached run()"
            started = time.monotonic()
            with ThreadPoolExecutor(3) as pool:
                queued = list(
                    pool.map(lambda _: call(port, "POST", "/score", b'{"data": [2]}'), range(3))
                )
            waited = time.monotonic() - started
        finally:
            module.release.set()
            slow.join(10)
        third = call(port, "POST", "/score", b'{"data": [3]}')
        document = call(port, "GET", "/openapi.json").json()
    assert [(r.status, r.body) for r in queued] == [(429, BUSY)] * 3
    assert waited >= 0.2
    assert [(r.status, r.body) for r in first] == [(200, b"[1]")]
    assert (third.status, third.body) == (200, b"[3]")  # the slot was given back
    assert isinstance(document, dict)
    assert "429" in document["paths"]["/score"]["post"]["responses"]
