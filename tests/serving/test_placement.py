"""Where run() is called: on the event loop while quick, in the thread pool once slow."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from mlform.serving import placement
from mlform.serving.app import create_app
from mlform.serving.placement import Placement
from mlform.serving.scoring import load_script
from tests.serving.conftest import Reply, call, serving_in_thread, write_deployment

# run() says which thread called it; given "hold" it waits until the test releases it;
# given a number, it takes that many seconds; given "async", it runs a coroutine itself.
PLACED_PY = """
    import asyncio
    import threading
    import time

    MLFORM_PARSED_INPUT = True
    started = threading.Event()
    release = threading.Event()


    async def _answer():
        await asyncio.sleep(0)
        return "from asyncio.run"


    def run(data):
        if data == "hold":
            started.set()
            release.wait(10)
        elif data == "async":
            return asyncio.run(_answer())
        elif isinstance(data, float):
            time.sleep(data)
        return threading.current_thread().name
"""


def test_quick_calls_stay_on_the_loop_and_slow_ones_move_to_threads() -> None:
    places = Placement()
    assert places.inline
    places.average = placement.QUICK * 0.9
    assert places.inline
    for _ in range(3):
        places._timed(lambda: None)
    assert places.average < placement.QUICK * 0.9  # quick calls pull the average down
    places._timed(lambda: threading.Event().wait(placement.QUICK * 10))
    assert places.average >= placement.QUICK  # no longer inline
    for _ in range(40):
        places._timed(lambda: None)
    assert places.inline  # and back, once calls are quick again


@pytest.mark.usefixtures("isolated_import")
def test_a_slow_script_moves_to_threads_so_health_answers_during_its_calls(
    tmp_path: Path,
) -> None:
    script = load_script(*write_deployment(tmp_path, PLACED_PY))
    module = script.module
    with serving_in_thread(create_app(script)) as port:
        quick = call(port, "POST", "/score", b'{"data": "quick"}')
        slow = call(port, "POST", "/score", b'{"data": 0.2}')  # on the loop, this once
        held: list[Reply] = []
        waiting = threading.Thread(
            target=lambda: held.append(call(port, "POST", "/score", b'{"data": "hold"}'))
        )
        waiting.start()
        try:
            assert module.started.wait(5), "the held request never reached run()"
            health = call(port, "GET", "/health")  # times out if run() holds the loop
        finally:
            module.release.set()
            waiting.join(10)
    assert quick.status == slow.status == 200
    assert quick.json() == slow.json()  # both on the server's own thread
    assert health.status == 200
    assert [r.status for r in held] == [200]
    assert held[0].json() != quick.json()  # a worker thread


@pytest.mark.usefixtures("isolated_import")
def test_a_run_that_calls_asyncio_run_works_on_the_loop(tmp_path: Path) -> None:
    script = load_script(*write_deployment(tmp_path, PLACED_PY))
    with serving_in_thread(create_app(script)) as port:
        reply = call(port, "POST", "/score", b'{"data": "async"}')
        after = call(port, "POST", "/score", b'{"data": "quick"}')
    assert (reply.status, reply.json()) == (200, "from asyncio.run")
    assert after.status == 200  # the server's own loop goes on


@pytest.mark.usefixtures("isolated_import")
@pytest.mark.parametrize("options", [{"request_timeout": 5.0}, {"max_concurrent": 4}])
def test_a_timeout_or_a_limit_keeps_every_call_in_the_thread_pool(
    tmp_path: Path, options: dict[str, float]
) -> None:
    script = load_script(*write_deployment(tmp_path, PLACED_PY))
    with serving_in_thread(create_app(script, **options)) as port:  # type: ignore[arg-type]
        reply = call(port, "POST", "/score", b'{"data": "quick"}')
    assert reply.status == 200
    assert reply.json() != threading.current_thread().name
    assert str(reply.json()).startswith("AnyIO worker thread")


def test_the_loop_is_restored_after_an_inline_call() -> None:
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        await Placement().call(lambda: None)
        return asyncio.get_running_loop() is loop

    assert asyncio.run(main())
