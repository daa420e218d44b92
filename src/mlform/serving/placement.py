"""Where the scoring server calls run(): on its event loop, or in its thread pool.

run() is blocking user code. Handing each call to a worker thread keeps the event loop
free while it runs, but the hand-off costs a round of contention for Python's GIL between
the loop's thread and the worker's; for a model that answers in under a millisecond (a
one-row scikit-learn prediction) that costs more than the call itself: profiled, the
hand-off halved the requests a deployment answered. MLflow's server and Azure ML's make
the same hand-off on every request.

So `Placement` calls run() right on the event loop while its calls are quick (a moving
average of their time under `QUICK`), and in the thread pool once they are not, so that a
slow script does not hold up /health, /ready and other clients' reads. A quick script's
sudden slow call holds the loop once, for that call; the average then sends the next calls
to threads, and brings them back when calls are quick again.

A deployment with a request timeout or a concurrency limit always uses the thread pool:
both need the event loop free while run() runs (`create_app` decides).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")

QUICK = 0.005  # seconds: calls averaging less run on the event loop
WEIGHT = 0.2  # of the newest call in the moving average


class Placement:
    """Calls one function on the event loop or in the thread pool, by its recent times."""

    def __init__(self, *, pooled: bool = False) -> None:
        self.pooled = pooled  # always in the thread pool
        self.average = 0.0  # seconds, moving average of recent calls

    @property
    def inline(self) -> bool:
        return not self.pooled and self.average < QUICK

    async def call(self, function: Callable[..., T], *args: object) -> T:
        result: T
        if self.inline:
            result = self._timed(_off_the_loop, function, *args)
        else:
            result = await run_in_threadpool(self._timed, function, *args)
        return result

    def _timed(self, function: Callable[..., T], *args: object) -> T:
        started = perf_counter()
        try:
            return function(*args)
        finally:
            self.average += WEIGHT * (perf_counter() - started - self.average)


def _off_the_loop(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` on the loop's thread, as if no loop ran there: a run() that calls
    `asyncio.run()` works as it does in a worker thread (or under Azure's server)."""
    loop = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    try:
        return function(*args)
    finally:
        asyncio.events._set_running_loop(loop)
